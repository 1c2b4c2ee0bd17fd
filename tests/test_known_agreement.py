"""Each zoo pair's agreement with dense on annotated images: measured as the widget runs it, summarized into the
registry."""

import shutil

import pytest


def test_a_summary_gives_the_range_over_every_image_and_per_data_set():
    from napari_prunuclei.study.known_agreement import summarize_agreement

    s = summarize_agreement({"monuseg2018 test": {"images": ["a", "b"], "aji": [0.9, 0.95]},
                             "gbm40": {"images": ["c", "d", "e"], "aji": [0.8, 0.85, 0.99]}})
    assert (s["n_images"], s["aji_min"], s["aji_median"], s["aji_max"]) == (5, 0.8, 0.9, 0.99)
    assert s["data"] == "monuseg2018 test + gbm40" and s["aji_sorted"] == [0.8, 0.85, 0.9, 0.95, 0.99]
    assert s["per_dataset"]["gbm40"] == {"n_images": 3, "aji_min": 0.8, "aji_median": 0.85, "aji_max": 0.99}


def test_the_registry_gets_each_pairs_range_in_both_branches(tmp_path, monkeypatch):
    from napari_prunuclei.models import zoo
    from napari_prunuclei.study.known_agreement import KEY, update_registry_agreement

    weights = tmp_path / "weights"
    shutil.copytree(zoo.WEIGHTS_DIR, weights, ignore=shutil.ignore_patterns("*.safetensors"))
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    measured = {"channel-layerwise-cr4": {"gbm40": {"images": ["x"], "aji": [0.91]}},
                "layerwise-cr7": {"gbm40": {"images": ["x"], "aji": [0.5]}}}  # (no such pair: nothing written)
    assert update_registry_agreement(measured) == 2
    before = zoo.find_entry("semantic", "channel-layerwise", 8).get(KEY)
    for branch in ("semantic", "distance"):
        assert zoo.find_entry(branch, "channel-layerwise", 4)[KEY]["aji_min"] == 0.91
        assert zoo.find_entry(branch, "channel-layerwise", 8).get(KEY) == before  # not measured here: kept
    assert KEY not in zoo.find_entry("semantic", "dense", 1)


@pytest.mark.slow
def test_measured_as_the_widgets_sweep_runs_every_zoo_pair(tiny_dataset, tmp_path):
    """Each pair's value is the widget's A-against-dense AJI on that image (the same function, its own
    thresholds), for every fine-tuned zoo pair, in each data set's folder of the shared layout."""
    import imageio.v3 as iio

    from napari_prunuclei.base.progress import drive
    from napari_prunuclei.study.known_agreement import measure_agreement, pair_key
    from napari_prunuclei.study.session_models import sweep_image, zoo_pairs

    root = tmp_path / "data"
    root.mkdir()
    for folder in ("monuseg2018", "gbm40"):
        (root / folder).symlink_to(tiny_dataset)
    measured = measure_agreement(root, workers=1)
    assert set(measured) == {pair_key(s, c) for s, c in zoo_pairs()}
    assert all(set(m) == {"monuseg2018 test", "gbm40"} and m["gbm40"]["images"] == ["syn5"] for m in
               measured.values())
    rgb = iio.imread(tiny_dataset / "images" / "syn5.png")
    row = drive(sweep_image(rgb, [("channel-layerwise", 4.0)], "cpu"))[0]
    assert measured["channel-layerwise-cr4"]["gbm40"]["aji"] == [round(row.vs_dense.aji, 6)]
    # one unreadable image (review, session 39: it lost the whole measurement): said, the others measured
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset, broken)
    (broken / "images" / "syn5.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "gbm40").unlink()
    (root / "gbm40").symlink_to(broken)
    failed: dict[str, str] = {}
    measured = measure_agreement(root, workers=1, failed=failed)
    assert list(failed) == ["gbm40/syn5"] and "syn5.png" in failed["gbm40/syn5"]
    assert all(set(m) == {"monuseg2018 test"} for m in measured.values())
