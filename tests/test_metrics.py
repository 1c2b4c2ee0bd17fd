import numpy as np
import pytest

from napari_prunuclei.nuclei.metrics import aji, dice, distance_mse, panoptic_quality, score_instances


def _case():
    # truth: two 2x2 squares; pred: half of the first, all of the second, one stray pixel
    t = np.zeros((4, 4), int)
    t[0:2, 0:2] = 1
    t[2:4, 2:4] = 2
    p = np.zeros((4, 4), int)
    p[0:2, 0:1] = 5
    p[2:4, 2:4] = 7
    p[0, 3] = 9
    return t, p


def test_dice_by_hand():
    t, p = _case()
    # |T| = 8, |P| = 7, |T & P| = 6  -> 12 / 15
    assert dice(t, p) == pytest.approx(0.8)


def test_aji_by_hand():
    t, p = _case()
    # pairs: (1,5) inter 2 union 4; (2,7) inter 4 union 4; unpaired pred 9 adds 1 -> 6 / 9
    assert aji(t, p) == pytest.approx(6 / 9)


def test_aji_counts_a_pred_shared_by_two_truths_twice():
    t = np.zeros((2, 4), int)
    t[:, :2] = 1
    t[:, 2:] = 2
    p = np.ones((2, 4), int)
    # each truth pairs with the one pred: inter 4 + 4, union 8 + 8
    assert aji(t, p) == pytest.approx(0.5)


def test_pq_by_hand():
    t, p = _case()
    # only (2,7) has IoU > 0.5 (the first pair has IoU exactly 0.5): TP 1, FP 2, FN 1
    r = panoptic_quality(t, p)
    assert r["dq"] == pytest.approx(1 / 2.5)
    assert r["sq"] == pytest.approx(1.0)
    assert r["pq"] == pytest.approx(0.4)
    assert r["f1"] == pytest.approx(2 / 5)


def test_perfect_and_empty():
    t, _ = _case()
    s = score_instances(t, t * 3)  # ids differ, objects identical
    assert (s.dice, s.aji, s.pq, s.f1) == (1.0, 1.0, 1.0, 1.0)
    assert aji(t, np.zeros_like(t)) == 0.0
    assert panoptic_quality(np.zeros_like(t), np.zeros_like(t))["pq"] == 1.0


def test_sq_is_mean_iou_of_matches():
    t = np.zeros((1, 10), int)
    t[0, :4] = 1
    t[0, 5:10] = 2
    p = np.zeros((1, 10), int)
    p[0, :3] = 1  # IoU 3/4
    p[0, 5:9] = 2  # IoU 4/5
    r = panoptic_quality(t, p)
    assert r["sq"] == pytest.approx((0.75 + 0.8) / 2)
    assert r["dq"] == 1.0


def test_distance_mse_and_shape_check():
    assert distance_mse(np.zeros((2, 2)), np.full((2, 2), 0.5)) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="shape"):
        aji(np.zeros((2, 2), int), np.zeros((3, 3), int))


@pytest.mark.parametrize("dtype,offset", [(np.uint32, 2**31), (np.int64, 2**40), (np.uint64, 2**63 - 10),
                                          (np.uint32, 0)])
def test_ids_of_any_integer_type_score_a_perfect_match(dtype, offset, tmp_path):
    import tifffile

    from napari_prunuclei.study.evaluation import score_files

    lab = np.zeros((40, 40), np.int64)
    lab[2:10, 2:10], lab[20:30, 5:15], lab[30:38, 30:38] = 1, 2, 3
    big = np.where(lab > 0, lab + offset, 0).astype(dtype)
    assert score_instances(lab, big).aji == pytest.approx(1.0)
    tifffile.imwrite(tmp_path / "t.tif", lab.astype(np.uint16))
    tifffile.imwrite(tmp_path / "p.tif", big)
    res = score_files(tmp_path / "t.tif", tmp_path / "p.tif")
    assert res["aji"] == pytest.approx(1.0) and res["dice"] == pytest.approx(1.0)


def test_ids_two_to_the_32_apart_stay_apart_and_negative_ids_are_refused():
    lab = np.zeros((20, 20), np.int64)
    lab[:10], lab[10:] = 1, 1 + 2**32
    assert score_instances(lab, lab).aji == pytest.approx(1.0)
    two = np.zeros_like(lab)
    two[:10], two[10:] = 1, 2
    assert score_instances(two, lab).aji == pytest.approx(1.0)  # two nuclei, not one
    with pytest.raises(ValueError, match="negative ids"):
        score_instances(two, -two)


@pytest.mark.parametrize("big", [False, True])
def test_the_overlap_table_equals_the_sorting_one(big):
    """The table paths (ids and pair counts without a sort) give what np.unique and a COO sum gave."""
    from scipy import sparse

    from napari_prunuclei.io.labels import unique_inverse
    from napari_prunuclei.nuclei.metrics import overlap_matrix

    rng = np.random.default_rng(1)
    t = rng.integers(0, 40, (64, 80)) * 3
    p = rng.integers(0, 55, (64, 80)) + 1  # no background in pred
    if big:  # ids far above the pixel count: np.unique
        t = t.astype(np.int64) * 10**9
    ids, inv = unique_inverse(t)
    ref_ids, ref_inv = np.unique(t, return_inverse=True)
    assert np.array_equal(ids, ref_ids) and np.array_equal(inv, ref_inv.reshape(t.shape))
    inter, area_t, area_p, nt, np_ = overlap_matrix(t, p)
    ti, pi = np.unique(t, return_inverse=True)[1].ravel(), np.unique(p, return_inverse=True)[1].ravel() + 1
    ref = sparse.coo_matrix((np.ones(t.size, np.int64), (ti, pi)), shape=(nt + 1, np_ + 1)).tocsr()
    assert (inter != ref).nnz == 0 and inter.dtype == ref.dtype and inter.has_canonical_format
    assert np.array_equal(inter.indices, ref.indices) and np.array_equal(inter.indptr, ref.indptr)
    assert area_t.sum() == area_p.sum() == t.size
