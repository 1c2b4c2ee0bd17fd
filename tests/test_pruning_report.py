from napari_prunuclei.study.pruning_report import write_report


def _row(scheme, cr, aji, variant="fine-tuned"):
    return {"dataset": "monuseg", "n_images": 2, "scheme": scheme, "cr": cr, "variant": variant,
            "semantic_dice": 0.8, "distance_aji": aji, "distance_mse": 0.01, "aji": aji, "pq": 0.6, "dice": 0.8}


def test_crossover_table_says_whether_the_fine_tuning_was_the_same(tmp_path):
    rows = [_row("dense", 1, 0.64, "dense"), _row("layerwise", 4, 0.639), _row("networkwide", 4, 0.638),
            _row("layerwise", 8, 0.60), _row("networkwide", 8, 0.63)]
    protocols = {"layerwise-cr4": "1200 steps", "networkwide-cr4": "1200 steps",
                 "layerwise-cr8": "400 steps", "networkwide-cr8": "80 steps"}
    text = write_report(rows, tmp_path / "p.md", "prunuclei sweep", {"protocols": protocols}).read_text()
    assert "| 4 | 0.6390 | 0.6380 | +0.0010 | layer-wise | yes |" in text
    assert "| 8 | 0.6000 | 0.6300 | -0.0300 | network-wide | no |" in text
    # largest CR within 2 %: layer-wise holds at 4 only (CR 8 drops 6 %), network-wide at 8
    assert "| instances (aji) | 4 | 8 |" in text
