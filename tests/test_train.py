import pytest
import torch

from napari_prunuclei.models.unet import UNet, UNetConfig
from napari_prunuclei.models.weights import load_branch
from napari_prunuclei.pruning.magnitude import magnitude_masks, prunable_parameters
from napari_prunuclei.training.train import TrainConfig, lr_at, train

TINY = UNetConfig(base_filters=4).to_dict()


def _cfg(**kw):
    base = dict(steps=4, batch=2, crop=64, n_val=1, ckpt_every=2, model=TINY, precision="fp32", warmup=2)
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_weights_log_and_plot(tiny_dataset, tmp_path):
    w = train(_cfg(branch="distance"), tiny_dataset, tmp_path, device="cpu", progress=False)
    assert w.name == "distance.safetensors"
    for f in ("checkpoint.pt", "log.csv", "loss.png", "config.json"):
        assert (tmp_path / f).is_file()
    assert load_branch(w).config.base_filters == 4


def test_resume_continues_exactly(tiny_dataset, tmp_path):
    full = train(_cfg(), tiny_dataset, tmp_path / "a", device="cpu", progress=False)
    assert train(_cfg(), tiny_dataset, tmp_path / "b", device="cpu", progress=False, stop_at=2) is None
    assert not (tmp_path / "b" / "semantic.safetensors").exists()
    resumed = train(_cfg(), tiny_dataset, tmp_path / "b", device="cpu", progress=False, resume=True)
    assert len((tmp_path / "b" / "log.csv").read_text().splitlines()) == 5
    a, b = load_branch(full).state_dict(), load_branch(resumed).state_dict()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k


def test_a_checkpoint_of_a_run_with_other_settings_is_not_resumed(tiny_dataset, tmp_path):
    """A checkpoint goes on only under the settings that wrote it: other steps would change its schedule,
    another seed its crops, and the result would be recorded as this run's. Threads may change."""
    assert train(_cfg(), tiny_dataset, tmp_path, device="cpu", progress=False, stop_at=2) is None
    with pytest.raises(ValueError, match="other settings \\(steps 4, now 6\\).*remove its folder"):
        train(_cfg(steps=6), tiny_dataset, tmp_path, device="cpu", progress=False, resume=True)
    import json

    was = json.loads((tmp_path / "config.json").read_text())
    del was["border_weight"]  # an older version's record, before this setting existed: its default counts
    (tmp_path / "config.json").write_text(json.dumps(was))
    assert train(_cfg(threads=1), tiny_dataset, tmp_path, device="cpu", progress=False, resume=True).is_file()


def test_lr_schedule():
    c = TrainConfig(steps=100, warmup=10, lr=1e-3, lr_min=1e-5)
    assert lr_at(0, c) == 1e-4
    assert abs(lr_at(10, c) - 1e-3) < 1e-9
    assert abs(lr_at(100, c) - 1e-5) < 1e-9


def test_masks_stay_fixed_through_finetuning(tiny_dataset, tmp_path):
    torch.manual_seed(0)
    model = UNet(UNetConfig.from_dict(TINY))
    masks = magnitude_masks(model, "networkwide", 4)
    w = train(_cfg(lr=1e-2), tiny_dataset, tmp_path, device="cpu", progress=False, init_model=model, masks=masks)
    tuned = load_branch(w)
    params = prunable_parameters(tuned)
    changed = False
    for name, m in masks.items():
        assert torch.all(params[name][~m] == 0), name
        changed |= bool(torch.any(params[name][m] != 0))
    assert changed


def test_distillation_changes_the_loss_and_keeps_masks(tiny_dataset, tmp_path):
    import csv

    torch.manual_seed(0)
    teacher = UNet(UNetConfig.from_dict(TINY))
    student = UNet(UNetConfig.from_dict(TINY))
    student.load_state_dict(teacher.state_dict())
    masks = magnitude_masks(student, "layerwise", 2)
    w = train(_cfg(), tiny_dataset, tmp_path / "kd", device="cpu", progress=False, init_model=student, masks=masks,
              teacher=teacher, distill=5.0)
    tuned = prunable_parameters(load_branch(w))
    for name, m in masks.items():
        assert torch.all(tuned[name][~m] == 0), name

    def first_loss(d):
        with open(d / "log.csv") as f:
            return float(next(csv.DictReader(f))["loss"])

    # same crops and init, plus a non-negative distillation term: the logged loss differs
    torch.manual_seed(0)
    student2 = UNet(UNetConfig.from_dict(TINY))
    train(_cfg(), tiny_dataset, tmp_path / "nokd", device="cpu", progress=False, init_model=student2, masks=masks)
    assert first_loss(tmp_path / "kd") != first_loss(tmp_path / "nokd")


def test_gradual_prune_continues_from_a_pruned_start(tiny_dataset, tmp_path):
    from napari_prunuclei.models.sparse import load_sparse
    from napari_prunuclei.training.finetune import gradual_prune

    torch.manual_seed(0)
    dense = UNet(UNetConfig.from_dict(TINY))
    (first,) = gradual_prune(dense, "semantic", "networkwide", [2], tiny_dataset, tmp_path / "a", steps_per_cr=0,
                             progress=False, crop=64, batch=2)
    start, start_masks, _ = load_sparse(first)
    (second,) = gradual_prune(dense, "semantic", "networkwide", [4], tiny_dataset, tmp_path / "b", steps_per_cr=2,
                              progress=False, start=start, teacher=dense, distill=1.0, device="cpu", crop=64,
                              batch=2)
    model, masks, meta = load_sparse(second)
    assert float(meta["distill"]) == 1.0
    for name, m in masks.items():  # the masks nest: what CR 2 pruned stays pruned at CR 4
        assert not torch.any(m & ~start_masks[name]), name


def test_every_run_holds_back_the_same_images(tiny_dataset, tmp_path):
    """Fine-tuning seeds vary per CR; the held-back (watershed-tuning) images must not."""
    import json

    from napari_prunuclei.models.weights import read_metadata
    from napari_prunuclei.study.evaluation import validation_names

    held = validation_names(tiny_dataset, n_val=1)
    for seed in (0, 7, 10000):
        w = train(_cfg(seed=seed, steps=1), tiny_dataset, tmp_path / f"s{seed}", device="cpu", progress=False)
        seen = json.loads(read_metadata(w)["train_images"])
        assert len(seen) == 4 and not set(seen) & set(held), (seed, seen, held)


def test_resume_from_a_malicious_checkpoint_runs_no_code_and_says_why(tiny_dataset, tmp_path, capsys):
    import pickle

    from napari_prunuclei.cli.main import main

    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(pickle.dumps({"model": Evil()}))
    assert main(["train", "--branch", "semantic", "--data", str(tiny_dataset), "--out", str(run), "--steps", "1",
                 "--device", "cpu", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume from" in err and "checkpoint.pt" in err and "Traceback" not in err
    assert not (tmp_path / "pwned").exists()


def test_registry_entry_without_hash_is_a_clear_error(tmp_path):
    import json
    import shutil

    from napari_prunuclei.models.weights import WeightsError
    from napari_prunuclei.models.zoo import WEIGHTS_DIR
    from napari_prunuclei.pruning.oneshot import load_model

    wd = tmp_path / "w"
    shutil.copytree(WEIGHTS_DIR, wd, ignore=shutil.ignore_patterns("*_cr*.safetensors"))
    reg = json.loads((wd / "registry.json").read_text())
    for e in reg["models"]:
        e.pop("sha256", None)
    (wd / "registry.json").write_text(json.dumps(reg))
    with pytest.raises(WeightsError, match="lacks sha256"):
        load_model("semantic", weights_dir=wd)


def test_touching_borders_marks_where_two_nuclei_meet_only():
    import numpy as np

    from napari_prunuclei.training.train import touching_borders

    lab = np.zeros((12, 12), int)
    lab[1:5, 1:5] = 1
    lab[1:5, 5:9] = 2  # touches 1 along columns 4|5
    lab[9:11, 9:11] = 3  # alone
    zone = touching_borders(lab, width=1)
    assert zone[2, 4] and zone[2, 5]
    assert not zone[2, 1] and not zone[2, 8] and not zone[10, 10] and not zone[0, 11]
    assert not touching_borders(np.where(lab == 3, 3, 0), width=2).any()


def test_border_weight_changes_the_semantic_loss_only_when_on(tiny_dataset, tmp_path, monkeypatch):
    import numpy as np

    import napari_prunuclei.training.train as tr

    real = tr.border_weights
    monkeypatch.setattr(tr, "border_weights", lambda *a, **k: [np.ones_like(m) for m in real(*a, **k)])

    def final_loss(weight, branch="semantic"):
        out = tmp_path / f"{branch}{weight}"
        train(_cfg(branch=branch, border_weight=weight, steps=2), tiny_dataset, out, device="cpu", progress=False)
        return (out / "log.csv").read_text().splitlines()[1].split(",")[1]

    assert final_loss(0.0) != final_loss(5.0)
    assert final_loss(0.0, "distance") == final_loss(5.0, "distance")


def test_a_stain_jitter_outside_its_range_is_refused():
    """TrainConfig.stain_jitter (issue 21's colour pilot): 1 or more would scale a stain's density to zero."""
    from napari_prunuclei.training.train import TrainConfig

    assert TrainConfig().stain_jitter == 0.05  # the shipped training's
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="stain_jitter must be in"):
            TrainConfig(stain_jitter=bad)
