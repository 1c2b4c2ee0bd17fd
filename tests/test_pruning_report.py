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
    assert "| 4 | 0.6390 | 0.6380 | +0.0010 | layer-wise (no interval) | yes |" in text
    assert "| 8 | 0.6000 | 0.6300 | -0.0300 | network-wide (no interval) | no |" in text
    # largest CR within 2 %: layer-wise holds at 4 only (CR 8 drops 6 %), network-wide at 8
    assert "| instances (aji) | 4 | 8 |" in text


def test_with_per_image_values_a_winner_is_named_only_where_the_interval_excludes_zero(tmp_path):
    images = [f"img{i}" for i in range(6)]
    dense = [0.60, 0.66, 0.58, 0.70, 0.62, 0.64]

    def row(scheme, cr, per, variant="fine-tuned"):
        r = _row(scheme, cr, sum(per) / len(per), variant)
        r.update(n_images=6, images=images, per_image={m: list(per) for m in ("aji", "semantic_dice", "distance_aji")})
        r["semantic_dice"] = r["distance_aji"] = r["aji"]
        return r

    lw4 = [v - 0.005 for v in dense]  # 0.005 below dense on every image
    nw4 = [v - 0.002 for v in dense]  # 0.002 below: network-wide better on every image, decided
    lw8 = [v + e for v, e in zip(dense, (-0.04, 0.03, -0.03, 0.04, -0.02, 0.0))]  # mixed: not decided
    nw8 = list(dense)
    rows = [row("dense", 1, dense, "dense"), row("layerwise", 4, lw4), row("networkwide", 4, nw4),
            row("layerwise", 8, lw8), row("networkwide", 8, nw8)]
    text = write_report(rows, tmp_path / "p.md", "prunuclei sweep", {}).read_text()
    line4 = next(x for x in text.splitlines() if x.startswith("| 4 | "))
    line8 = next(x for x in text.splitlines() if x.startswith("| 8 | "))
    assert "| network-wide |" in line4 and "[-0.0030, -0.0030]" in line4
    assert "| not decided |" in line8
    # layer-wise within 2 % at 4 and 8 on average, but not in every resample at 8; network-wide in all
    assert "| instances (aji) | 8 [4, 8] | 8 [8, 8] | none | none | 5 |" in text
    assert "| layerwise | 8 | fine-tuned |" in text and "+0.5 % [-3.2, +4.4] |" in text
    assert "95 % paired bootstrap" in text
