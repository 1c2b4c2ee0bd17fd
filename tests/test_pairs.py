from napari_prunuclei.models.zoo import find_entry
from napari_prunuclei.nuclei.watershed import WATERSHED_RULE, WatershedParams
from napari_prunuclei.runtime.pairs import ModelSpec, results_record


def test_results_record_names_the_files_thresholds_and_rule_that_make_a_pairs_results():
    dense = results_record(ModelSpec())
    assert dense["weights"] == {b: find_entry(b, "dense", 1)["sha256"] for b in ("semantic", "distance")}
    assert dense["watershed_rule"] == WATERSHED_RULE and dense["made_by"] == "zoo file"
    zoo = results_record(ModelSpec("layerwise", 2))
    sha = find_entry("semantic", "layerwise", 2)["sha256"]
    assert zoo["weights"]["semantic"] == sha != dense["weights"]["semantic"]
    one_shot = results_record(ModelSpec("layerwise", 3))  # not in the zoo: pruned from the dense files
    assert one_shot["weights"] == dense["weights"] and one_shot["made_by"].startswith("one-shot")
    own = WatershedParams(0.3, 0.2, 5)
    assert results_record(ModelSpec(), own)["thresholds"] == own.as_dict() != dense["thresholds"]
