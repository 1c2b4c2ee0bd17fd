import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _quiet_machine():
    """Runs record how busy other work kept the CPUs (their one-run seconds say so above a fifth): the tests
    read the same words on a loaded machine as on a quiet one. tests/test_machine.py measures the real thing."""
    from napari_prunuclei.base import machine

    with pytest.MonkeyPatch.context() as mp:  # every caller looks it up in base.machine at each call
        mp.setattr(machine, "cpu_snapshot", lambda *a, **k: None)
        yield


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(1)


def _data_root() -> Path:
    return Path(os.environ.get("PRUNUCLEI_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if not (root / "monuseg2018" / "split.json").is_file():
        pytest.skip(f"shared data not found at {root} (set PRUNUCLEI_DATA)")
    return root


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """A data folder in the shared layout, made from synthetic tiles."""
    import json

    import imageio.v3 as iio
    import tifffile

    from napari_prunuclei.nuclei.synthetic import synthetic_tile

    root = tmp_path / "tiny"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    names = [f"syn{i}" for i in range(6)]
    for i, n in enumerate(names):
        rgb, lab = synthetic_tile(128, seed=i)
        iio.imwrite(root / "images" / f"{n}.png", rgb)
        tifffile.imwrite(root / "labels" / f"{n}.tif", lab.astype(np.uint16))
    (root / "split.json").write_text(json.dumps({"train": names[:5], "test": names[5:]}))
    return root


@pytest.fixture
def viewer_widget(make_napari_viewer):
    """napari with the synthetic sample (image and ground truth) and the plugin's widget docked on it."""
    from napari_prunuclei.gui.samples import synthetic_sample
    from napari_prunuclei.gui.widget import PruneCompareWidget

    viewer = make_napari_viewer()
    for data, meta, kind in synthetic_sample():
        getattr(viewer, f"add_{kind}")(data, **meta)
    w = PruneCompareWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.image.value = viewer.layers["synthetic H&E"]
    return viewer, w
