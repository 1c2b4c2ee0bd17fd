"""Every front end gives the same answer for the same tile: they all run ``pipeline.segment``."""

import json

import numpy as np
import pytest
import tifffile

from napari_prunuclei.cli.main import main
from napari_prunuclei.io.dataset import NucleiDataset
from napari_prunuclei.nuclei.agreement import agreement_scores
from napari_prunuclei.runtime.pairs import load_pair
from napari_prunuclei.runtime.pipeline import segment

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def tile(data_root):
    ds = NucleiDataset(data_root / "monuseg2018")
    name = ds.names("test")[0]
    rgb, truth = ds.load(name)
    return name, rgb, truth


def test_dense_numbers_agree_between_api_cli_and_evaluate(data_root, tile, tmp_path):
    name, rgb, truth = tile
    api = segment(rgb, load_pair(), device="cpu")
    api_aji = agreement_scores(truth, api.labels).aji
    # prunuclei segment
    out = tmp_path / "seg"
    assert main(["segment", str(data_root / "monuseg2018" / "images" / f"{name}.png"), "-o", str(out),
                 "--device", "cpu"]) == 0
    info = json.loads((out / f"{name}_info.json").read_text())
    labels = tifffile.imread(out / f"{name}_labels.tif")
    assert info["n_nuclei"] == api.n_nuclei
    np.testing.assert_array_equal(labels, api.labels)
    assert info["watershed"] == load_pair().params.as_dict()
    # prunuclei evaluate on the same (first) test image
    ev = tmp_path / "e.json"
    assert main(["evaluate", "--data", str(data_root / "monuseg2018"), "--limit", "1", "--json", str(ev),
                 "--device", "cpu"]) == 0
    res = json.loads(ev.read_text())
    assert res["per_image"][0]["name"] == name
    assert round(res["aji"], 3) == round(api_aji, 3)


@pytest.mark.gui
def test_widget_dense_numbers_equal_the_api(qtbot, make_napari_viewer, tile):
    from napari_prunuclei.gui.widget import PruneCompareWidget

    name, rgb, truth = tile
    viewer = make_napari_viewer()
    viewer.add_image(rgb, name=name[:12], rgb=True)
    viewer.add_labels(truth.astype(np.int32), name="truth")
    w = PruneCompareWidget(viewer)
    w.image.value = viewer.layers[name[:12]]
    w.truth.value = viewer.layers["truth"]
    api = segment(rgb, load_pair(), device="cpu")
    api_aji = agreement_scores(truth, api.labels).aji
    for scheme, cr in (("network-wide", "20"), ("layer-wise", "4")):  # the dense reference never moves
        w.scheme.value, w.cr.value = scheme, cr
        assert w.start_run() is not None
        qtbot.waitUntil(lambda: not w.busy, timeout=120_000)
        assert w.result.dense.n_nuclei == api.n_nuclei
        assert round(w.result.numbers.vs_truth["dense"].aji, 3) == round(api_aji, 3)
        assert f"dense {api.n_nuclei}" in w.numbers_text


@pytest.mark.slow
def test_widget_sweep_equals_prunuclei_sweep_on_one_tile(data_root, tile, tmp_path):
    """The dock's CR sweep and ``prunuclei sweep --limit 1`` score the same pairs the same way."""
    from napari_prunuclei.base.progress import drive
    from napari_prunuclei.study.session_models import sweep_image
    from napari_prunuclei.study.sweep import run_sweep

    name, rgb, truth = tile
    crs = [4.0, 20.0, 7.0]  # two zoo CRs (fine-tuned, own thresholds) and one one-shot
    dock = drive(sweep_image(rgb, [(s, c) for s in ("layerwise", "networkwide") for c in crs], "cpu", truth))
    rows = run_sweep(data_root, crs=tuple(crs), variants=("one-shot", "fine-tuned"), datasets=("monuseg",),
                     limit=1, device="cpu")
    for r in dock:
        variant = "fine-tuned" if r.fine_tuned else "one-shot"
        cli = next(x for x in rows if (x.scheme, x.cr, x.variant) == (r.scheme, r.cr, variant))
        assert round(r.vs_truth.aji, 3) == round(cli.aji, 3), (r.scheme, r.cr, variant)
        assert round(r.vs_truth.pq, 3) == round(cli.pq, 3)
        # each row names what made it, so an --rows reuse can tell it from another zoo's
        from napari_prunuclei.runtime.pairs import ModelSpec, results_record
        assert cli.made_by == results_record(ModelSpec(r.scheme, r.cr, r.fine_tuned))
