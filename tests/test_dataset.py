import json

import numpy as np
import pytest

from napari_prunuclei.io.dataset import (
    DataError,
    NucleiDataset,
    augment,
    distance_target,
    random_crops,
    split_train_val,
)


def test_distance_target_peaks_at_one_per_nucleus():
    lab = np.zeros((20, 30), int)
    lab[2:7, 2:7] = 1  # small
    lab[5:18, 10:28] = 2  # large, touching nothing
    d = distance_target(lab)
    assert d.dtype == np.float32
    assert d[lab == 0].max() == 0
    for i in (1, 2):
        assert d[lab == i].max() == pytest.approx(1.0)
        assert d[lab == i].min() > 0
    # the centre of the small square is its peak; its border pixels are lowest
    assert d[4, 4] == pytest.approx(1.0)
    assert d[2, 2] == pytest.approx(1 / 3)


def test_distance_target_separates_touching_nuclei():
    lab = np.zeros((10, 20), int)
    lab[2:8, 2:10] = 1
    lab[2:8, 10:18] = 2
    d = distance_target(lab)
    assert d[5, 9] < 0.5 and d[5, 10] < 0.5  # the shared border is low on both sides


def test_augment_keeps_image_and_target_aligned():
    rng = np.random.default_rng(0)
    img = np.zeros((16, 16, 3), np.float32) + 0.8
    tgt = np.zeros((16, 16), np.float32)
    img[0, 0] = 0.1
    tgt[0, 0] = 1
    for _ in range(8):
        x, (y,) = augment(img, [tgt], rng)
        r, c = np.unravel_index(np.argmax(y), y.shape)
        assert x[r, c].mean() < x.mean()  # the dark pixel moved with the target


def test_random_crops_shapes():
    rng = np.random.default_rng(1)
    imgs = [np.random.rand(40, 50, 3).astype(np.float32)]
    tgts = [np.random.rand(40, 50).astype(np.float32)]
    x, y = random_crops(imgs, tgts, 3, 32, rng)
    assert x.shape == (3, 3, 32, 32) and y.shape == (3, 1, 32, 32)
    with pytest.raises(DataError, match="smaller than the crop"):
        random_crops(imgs, tgts, 1, 64, rng)


def test_split_train_val_is_seeded_and_disjoint():
    names = [f"n{i}" for i in range(10)]
    tr, va = split_train_val(names, 4, seed=0)
    assert len(va) == 4 and not set(tr) & set(va) and sorted(tr + va) == sorted(names)
    assert split_train_val(names, 4, seed=0) == (tr, va)


def test_reader_on_tiny_dataset(tiny_dataset):
    ds = NucleiDataset(tiny_dataset)
    assert ds.names("test") == ["syn5"]
    rgb, lab = ds.load("syn0")
    assert rgb.shape == (128, 128, 3) and rgb.dtype == np.uint8
    assert lab.dtype == np.int32 and lab.max() > 0


def test_reader_errors(tmp_path, tiny_dataset):
    with pytest.raises(DataError, match="not found"):
        NucleiDataset(tmp_path / "nope")
    (tmp_path / "bad").mkdir()
    with pytest.raises(DataError, match="images"):
        NucleiDataset(tmp_path / "bad")
    (tiny_dataset / "split.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        NucleiDataset(tiny_dataset)
    (tiny_dataset / "split.json").write_text(json.dumps({"train": ["syn0", "ghost"]}))
    ds = NucleiDataset(tiny_dataset)
    with pytest.raises(DataError, match="split 'test'"):
        ds.names("test")
    with pytest.raises(DataError, match="ghost"):
        ds.load("ghost")


def test_reader_on_shared_data(data_root):
    ds = NucleiDataset(data_root / "monuseg2018")
    assert len(ds.names("train")) == 30 and len(ds.names("test")) == 14
    rgb, lab = ds.load(ds.names("test")[0])
    assert rgb.shape == (1000, 1000, 3) and lab.shape == (1000, 1000)


def test_a_wider_stain_jitter_changes_colours_only_and_keeps_the_same_draws():
    """TrainConfig.stain_jitter (issue 21's colour pilot): the shipped range gives exactly what augment gave, a
    wider one moves the colours further, and the geometry and the targets do not depend on it."""
    from napari_prunuclei.io.dataset import augment

    rgb = np.random.default_rng(0).uniform(0.2, 0.9, (32, 32, 3)).astype(np.float32)
    tgt = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    base = augment(rgb, [tgt], np.random.default_rng(7))
    same = augment(rgb, [tgt], np.random.default_rng(7), stain=0.05)
    wide = augment(rgb, [tgt], np.random.default_rng(7), stain=0.3)
    none = augment(rgb, [tgt], np.random.default_rng(7), stain=0.0)
    assert np.array_equal(base[0], same[0]) and np.array_equal(base[1][0], wide[1][0])
    assert np.abs(wide[0] - none[0]).mean() > np.abs(base[0] - none[0]).mean() > 0
