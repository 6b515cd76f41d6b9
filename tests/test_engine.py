"""The engine end to end on small synthetic FreiHAND-style data (smoke profile, CPU).

Train, kill with SIGKILL mid-epoch, resume, and compare with an uninterrupted run; reuse of a
finished run; strict checkpoint loading; evaluate (metrics.json, provenance, submission,
baseline); predict (OBJ, PLY, JSON, PNG, with and without a box, --left); bad arguments.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from handssca.__main__ import main as cli
from handssca.engine import checkpoint as ckpt
from handssca.engine import evaluate, load_run, predict, run_log, train
from handssca.models import NETWORK_VERSION, build_model
from handssca.engine.trainer import RunConfigMismatchError

REPO = Path(__file__).resolve().parents[1]
SEED = 3
# three short epochs: the kill lands in the second
OVERRIDES = {"epochs": 3}
LOSS_KEYS = ("loss", "loss_vertices", "loss_joints", "loss_pose", "loss_shape", "loss_joints2d",
             "val_loss", "val_pa_mpjpe", "val_mpjpe", "val_pa_mpvpe")


@pytest.fixture(scope="module")
def data_root(home):
    """Synthetic FreiHAND-style data of the smoke profile, generated once through the engine."""
    from handssca.engine.datasets import ensure_synthetic, synth_root

    root = ensure_synthetic("freihand", "smoke", SEED, log=lambda m: None)
    assert root == synth_root("freihand", "smoke", SEED)
    assert str(root).startswith(str(home))
    return root


@pytest.fixture(scope="module")
def run_a(home, data_root):
    """An uninterrupted smoke run."""
    return train("freihand", None, profile="smoke", out=home / "runs" / "a", seed=SEED,
                 overrides=OVERRIDES, verbose=False)


def _log_rows(run):
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------------------------
def test_train_summary_and_synthetic_label(run_a, data_root):
    assert run_a["status"] == "complete" and not run_a["reused"]
    assert run_a["data"] == "synthetic" and run_a["data_root"] == str(data_root)
    rows = _log_rows(run_a.path)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["val_pa_mpjpe"]) for r in rows)
    # the schedule of the smoke profile: lr x0.5 every epoch
    assert [r["lr"] for r in rows] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    last = json.loads((run_a.path / "checkpoints" / "last.json").read_text())
    for key in ("network", "dataset", "data", "profile", "seed", "provenance", "weights_sha256"):
        assert key in last
    assert last["network_version"] == NETWORK_VERSION
    assert last["network"]["backbone"]["kind"] == "light"
    assert last["data"] == "synthetic" and last["seed"] == SEED and last["epoch"] == 3
    assert {"commit", "device", "time_utc"} <= set(last["provenance"])
    table = run_log(run_a.path)
    assert table.column("epoch") == [1, 2, 3] and "val_pa_mpjpe" in table.to_markdown()


def test_killed_run_resumes_exactly(home, data_root, run_a):
    out = home / "runs" / "b"
    marker = home / "killed-here"
    script = f"""
import sys, time
from pathlib import Path
from handssca.engine import train
def cb(ev):
    if ev["kind"] == "step" and ev["epoch"] == 2 and ev["batch"] == 1:
        Path({str(marker)!r}).write_text("in epoch 2")
        time.sleep(600)
train("freihand", None, profile="smoke", out={str(out)!r}, seed={SEED},
      overrides={OVERRIDES!r}, callback=cb, verbose=False)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=str(REPO), env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(f"the run ended early: {proc.stderr.read().decode()[-2000:]}")
            if time.time() > deadline:
                raise AssertionError("the run never reached epoch 2")
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    # killed mid-epoch 2: epoch 1 is saved, nothing of epoch 2
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    assert json.loads((out / "checkpoints" / "last.json").read_text())["epoch"] == 1
    assert [r["epoch"] for r in _log_rows(out)] == [1]
    with pytest.raises(RuntimeError, match="unfinished run"):
        train("freihand", None, profile="smoke", out=out, seed=SEED, overrides=OVERRIDES,
              resume=False, verbose=False)
    resumed = train("freihand", None, profile="smoke", out=out, seed=SEED, overrides=OVERRIDES,
                    resume=True, verbose=False)
    assert resumed["status"] == "complete"
    a, b = _log_rows(run_a.path), _log_rows(out)
    assert [r["epoch"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        for k in LOSS_KEYS:
            assert ra[k] == rb[k], (ra["epoch"], k, ra[k], rb[k])
    # and the final weights are the same bytes
    wa = json.loads((run_a.path / "checkpoints" / "last.json").read_text())["weights_sha256"]
    wb = json.loads((out / "checkpoints" / "last.json").read_text())["weights_sha256"]
    assert wa == wb
    # no file of the killed epoch is left behind
    names = {p.name for p in (out / "checkpoints").iterdir()}
    assert not any(n.startswith(".") for n in names)


def test_finished_run_is_reused_and_another_config_refused(run_a, home):
    last = run_a.path / "checkpoints" / "last.json"
    before = last.stat().st_mtime_ns
    again = train("freihand", None, profile="smoke", out=run_a.path, seed=SEED,
                  overrides=OVERRIDES, verbose=False)
    assert again["reused"] and again["final"] == run_a["final"]
    assert last.stat().st_mtime_ns == before
    with pytest.raises(RunConfigMismatchError, match="train.epochs"):
        train("freihand", None, profile="smoke", out=run_a.path, seed=SEED,
              overrides={"epochs": 4}, verbose=False)
    with pytest.raises(RunConfigMismatchError, match="attention"):
        train("freihand", None, profile="smoke", attention="none", out=run_a.path, seed=SEED,
              overrides=OVERRIDES, verbose=False)


def test_paper_profile_starts_resnet50_from_imagenet_weights(data_root, tmp_path):
    """The paper's initialisation: the ResNet-50 starts from the given file (a stand-in for
    torchvision's, with weights of its own), a few Adam steps away from it afterwards."""
    from handssca.models import ResNet50

    torch.manual_seed(123)
    sd = {k: (0.02 * torch.randn_like(v) if v.dim() == 4 else v)
          for k, v in ResNet50().state_dict().items()}
    sd.update({"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)})
    weights = tmp_path / "resnet50-test.pth"
    torch.save(sd, str(weights))
    # the smallest network on ResNet-50 (no attention, narrow heads): the backbone is the point
    over = {"epochs": 1, "batch_size": 8, "input_size": 128, "num_workers": 0, "amp": "none",
            "channels_last": False, "imagenet_weights": str(weights),
            "model": {"C": 16, "hourglass_depth": 1}}
    summary = train("freihand", data_root, profile="paper", attention="none",
                    out=tmp_path / "run", seed=0, overrides=over, verbose=False,
                    tensorboard=False)
    assert summary["final"]["step"] == 4  # 32 images, batch 8
    conv1 = load_run(summary.path, device="cpu").model.backbone.resnet.conv1.weight
    assert (conv1 - sd["conv1.weight"]).abs().max() < 2e-3  # Adam, lr 1e-4, 4 steps
    config = json.loads((summary.path / "run.json").read_text())["config"]
    assert config["train"]["imagenet_weights"] == {"file": weights.name,
                                                   "sha256": ckpt.sha256_file(weights)}


# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hand():
    from handssca.hand import load_hand_model

    return load_hand_model()


def _tiny(hand, **model):
    base = {"attention": "ssca", "input_size": 128, "C": 16, "hourglass_depth": 1,
            "backbone": {"kind": "light", "widths": [8, 8, 16, 16, 32]}}
    base.update(model)
    return build_model(**base, hand_model=hand)


def test_checkpoint_round_trip(tmp_path, hand):
    torch.manual_seed(0)
    model = _tiny(hand)
    with torch.no_grad():  # make the BN buffers non-default too
        model.train()(torch.randn(2, 3, 128, 128))
    info = {"network": model.config.to_dict(), "dataset": "freihand", "data": "synthetic"}
    ckpt.write_checkpoint(tmp_path, model, info, epoch=1)
    torch.manual_seed(1)
    other = build_model(**model.config.to_dict(), hand_model=hand)  # rebuilt from the config
    assert not torch.equal(other.state_dict()["encoder.heatmap_proj.weight"],
                           model.state_dict()["encoder.heatmap_proj.weight"])
    rec = ckpt.load_weights(other, tmp_path)
    assert rec["epoch"] == 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, other.state_dict()[k]), k
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(model.eval()(x)["vertices"], other.eval()(x)["vertices"])


def test_checkpoint_refuses_mismatch_naming_it(tmp_path, hand):
    model = _tiny(hand)
    ckpt.write_checkpoint(tmp_path, model, {"network": model.config.to_dict()}, epoch=1)
    with pytest.raises(ckpt.CheckpointMismatchError, match=r"network\.attention is 'ssca'.*'ssa'"):
        ckpt.load_weights(_tiny(hand, attention="ssa"), tmp_path)
    with pytest.raises(ckpt.CheckpointMismatchError, match=r"network\.input_size"):
        ckpt.load_weights(_tiny(hand, input_size=160), tmp_path)
    with pytest.raises(ckpt.CheckpointMismatchError, match=r"network\.backbone\.widths"):
        ckpt.load_weights(_tiny(hand, backbone={"kind": "light", "widths": [8, 8, 16, 16, 16]}),
                          tmp_path)
    # weights whose shapes disagree with the recorded configuration: the first tensor is named
    from safetensors.torch import load_file, save_file

    last = json.loads((tmp_path / "checkpoints" / "last.json").read_text())
    wfile = tmp_path / "checkpoints" / last["weights"]
    sd = load_file(str(wfile))
    key = "attention.ss2d.in_proj.weight"
    sd[key] = torch.zeros(sd[key].shape[0] + 1, sd[key].shape[1])
    save_file(sd, str(wfile))
    with pytest.raises(ckpt.CheckpointMismatchError, match="SHA-256"):
        ckpt.load_weights(_tiny(hand), tmp_path)
    with pytest.raises(ckpt.CheckpointMismatchError, match=f"{key}.*shape"):
        ckpt.load_weights(_tiny(hand), tmp_path, check_hash=False)
    del sd[key]
    save_file(sd, str(wfile))
    with pytest.raises(ckpt.CheckpointMismatchError, match=f"lacks the tensor '{key}'"):
        ckpt.load_weights(_tiny(hand), tmp_path, check_hash=False)


def test_checkpoint_of_an_earlier_network_version_is_refused(tmp_path, hand):
    model = _tiny(hand)
    ckpt.write_checkpoint(tmp_path, model, {"network": model.config.to_dict(), "dataset": "ho3d",
                                            "data": "synthetic", "profile": "smoke", "seed": 0},
                          epoch=1)
    last = tmp_path / "checkpoints" / "last.json"
    rec = json.loads(last.read_text())
    # as the package wrote it before the conventions changed: no version, the spec of old
    old = {k: v for k, v in rec.items() if k not in ("network", "network_version")}
    net = dict(rec["network"])
    old["spec"] = {"model": net, "backbone": net.pop("backbone")}
    last.write_text(json.dumps(old))
    for load in (lambda: ckpt.load_weights(_tiny(hand), tmp_path),
                 lambda: load_run(tmp_path, device="cpu", hand_model=hand)):
        with pytest.raises(ckpt.CheckpointMismatchError) as err:
            load()
        msg = str(err.value)
        assert "network version 1" in msg and "raw heatmap" in msg and "Retrain" in msg
        assert "ROT6D_ROWS_FROM_ROW_MAJOR is not enough" in msg
    last.write_text(json.dumps(dict(rec, network_version=NETWORK_VERSION + 1)))
    with pytest.raises(ckpt.CheckpointMismatchError, match="newer than this package"):
        ckpt.load_weights(_tiny(hand), tmp_path)


# ----------------------------------------------------------------------------------------------
def test_evaluate_writes_metrics_with_provenance_and_submission(run_a, data_root, tmp_path):
    from handssca import metrics as M
    from handssca.engine import mean_pose_baseline
    from handssca.submit import read_freihand_pred

    rep = evaluate(run_a.path, out=tmp_path, verbose=False)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["data"] == "synthetic" and saved["dataset"] == "freihand"
    prov = saved["provenance"]
    assert prov["profile"] == "smoke" and prov["seed"] == SEED and prov["device"] == "cpu"
    assert prov["commit"] and prov["hand_model"]["kind"] in ("procedural", "mano")
    weights = Path(saved["checkpoint"]["path"])
    assert saved["checkpoint"]["weights_sha256"] == ckpt.sha256_file(weights)
    # the submission holds the predictions the metrics were computed from
    joints, verts = read_freihand_pred(tmp_path / saved["submission"])
    gt_j = np.asarray(json.loads((data_root / "evaluation_xyz.json").read_text()))
    gt_v = np.asarray(json.loads((data_root / "evaluation_verts.json").read_text()))
    assert joints.shape == gt_j.shape and verts.shape == gt_v.shape
    assert saved["metrics"]["pa_mpjpe"] == pytest.approx(M.pa_mpjpe(joints, gt_j), rel=1e-6)
    assert saved["metrics"]["f15_aligned"] == pytest.approx(M.f_score(verts, gt_v, 0.015), abs=1e-6)
    # the mean-pose baseline on the same samples, and its standalone function agree
    base = saved["baseline"]["metrics"]
    assert base["pa_mpjpe"] > 0 and saved["ratio_to_baseline"]["pa_mpjpe"] == pytest.approx(
        saved["metrics"]["pa_mpjpe"] / base["pa_mpjpe"])
    alone = mean_pose_baseline(run=run_a.path, verbose=False)
    assert alone["metrics"]["pa_mpjpe"] == pytest.approx(base["pa_mpjpe"], rel=1e-12)
    art = saved["baseline_mean_articulation"]["metrics"]
    assert alone["mean_articulation"]["pa_mpjpe"] == pytest.approx(art["pa_mpjpe"], rel=1e-12)
    # the run's held-out rows: the same PA-MPJPE as the training log's last validation
    val = evaluate(run_a.path, split="val", out=tmp_path / "val", verbose=False)
    assert val["submission"] is None and val["n_samples"] == 8
    assert val["metrics"]["pa_mpjpe"] == pytest.approx(run_a["final"]["val_pa_mpjpe"], rel=1e-6)
    assert rep["metrics"] == saved["metrics"]
    loaded = load_run(run_a.path)
    assert loaded.data == "synthetic" and len(loaded.log) == 3 and not loaded.model.training


def test_evaluate_cli_prints_both_constants_or_leaves_them_out(run_a, tmp_path, capsys):
    assert cli(["evaluate", "--checkpoint", str(run_a.path), "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "mean-pose constant:" in out and "mean-articulation constant:" in out
    assert "vs best constant" in out and "baseline" not in out
    # --no-constants (its first name --no-baseline still works) skips both
    for flag, folder in (("--no-constants", "b"), ("--no-baseline", "c")):
        assert cli(["evaluate", "--checkpoint", str(run_a.path), flag,
                    "--out", str(tmp_path / folder)]) == 0
        out = capsys.readouterr().out
        assert "constant:" not in out and "no constant was scored" in out
        saved = json.loads((tmp_path / folder / "metrics.json").read_text())
        assert saved["baseline"] is None and saved["baseline_mean_articulation"] is None


# ----------------------------------------------------------------------------------------------
def _image(data_root):
    return data_root / "evaluation" / "rgb" / "00000000.jpg"


def test_predict_files_box_whole_image_and_left(run_a, data_root, tmp_path):
    import cv2
    import trimesh

    img = _image(data_root)
    assert cli(["predict", str(img), "--checkpoint", str(run_a.path), "--out", str(tmp_path / "box"),
                "--bbox", "40", "30", "190", "200"]) == 0
    assert cli(["predict", str(img), "--checkpoint", str(run_a.path), "--out", str(tmp_path / "whole")]) == 0
    for sub in ("box", "whole"):
        d = tmp_path / sub
        assert {p.name for p in d.iterdir()} == {"00000000.obj", "00000000.ply", "00000000.json",
                                                 "00000000_overlay.png"}
        mesh = trimesh.load(d / "00000000.ply", process=False)
        assert mesh.vertices.shape == (778, 3) and mesh.faces.shape == (1538, 3)
        png = cv2.imread(str(d / "00000000_overlay.png"))
        assert png.shape == (224, 224, 3)
        rec = json.loads((d / "00000000.json").read_text())
        assert len(rec["joints"]) == 21 and len(rec["mano"]["pose"]) == 48
        assert "metres" in rec["frame"] and rec["joint_order"][0] == "W"
        obj = trimesh.load(d / "00000000.obj", process=False)
        np.testing.assert_allclose(obj.vertices, mesh.vertices, atol=1e-5)
        np.testing.assert_allclose(np.asarray(rec["joints"]) - rec["translation"],
                                   rec["joints_root_relative"], atol=1e-9)
    assert "whole image" in json.loads((tmp_path / "whole" / "00000000.json").read_text())["crop"]
    assert "given box" in json.loads((tmp_path / "box" / "00000000.json").read_text())["crop"]
    # --left equals the mirror image of the right-hand prediction on the mirrored image
    rgb = cv2.imread(str(img))
    flipped = tmp_path / "flipped.png"
    cv2.imwrite(str(flipped), np.ascontiguousarray(rgb[:, ::-1]))
    run = load_run(run_a.path)
    (left,) = predict(img, run, tmp_path / "left", bbox=[40, 30, 190, 200], left=True,
                      overlay=False, verbose=False)
    (right,) = predict(flipped, run, tmp_path / "right", bbox=[224 - 190, 30, 224 - 40, 200],
                       overlay=False, verbose=False)
    assert left["hand"] == "left"
    np.testing.assert_allclose(np.asarray(left["joints"]) * [-1, 1, 1], right["joints"], atol=1e-6)
    uv_l, uv_r = np.asarray(left["joints2d"]), np.asarray(right["joints2d"])
    np.testing.assert_allclose(uv_l[:, 0], 223 - uv_r[:, 0], atol=1e-4)
    # the mesh's triangles are reversed with the mirroring, so its normals still point outwards
    ml = trimesh.load(tmp_path / "left" / "00000000.ply", process=False)
    mr = trimesh.load(tmp_path / "right" / "flipped.ply", process=False)
    assert np.sign(ml.volume) == np.sign(mr.volume)


# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["train", "--dataset", "ho3d", "--profile", "nope"], "unknown profile 'nope'"),
    (["train", "--dataset", "ho3d", "--profile", "smoke", "--epochs", "0"], "--epochs must be"),
    (["train", "--dataset", "ho3d", "--profile", "smoke", "--device", "cuda:7"], "--device"),
    (["train", "--dataset", "ho3d", "--data-root", "/no/such/folder"], "is not a folder"),
    (["evaluate", "--checkpoint", "/no/such/run"], "checkpoint not found"),
    (["predict", "/no/such.png", "--checkpoint", "/no/such/run", "--out", "x"], "image not found"),
])
def test_bad_arguments_give_clear_errors(argv, message, capsys, home):
    assert cli(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_box_and_unknown_choice(run_a, data_root, tmp_path, capsys):
    img = str(_image(data_root))
    assert cli(["predict", img, "--checkpoint", str(run_a.path), "--out", str(tmp_path),
                "--bbox", "100", "10", "50", "60"]) == 2
    assert "X1 < X2" in capsys.readouterr().err
    assert cli(["predict", img, "--checkpoint", str(run_a.path), "--out", str(tmp_path),
                "--bbox", "500", "500", "600", "600"]) == 2
    assert "outside" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli(["train", "--dataset", "coco"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
def test_dexycb_protocol_unmirrors_left_hands(home):
    """DexYCB: the synthetic test split of the smoke profile holds a left hand; the result file
    must hold the un-mirrored prediction on the ground-truth wrist, and the MPJPE of
    metrics.json must be the error of exactly that file against the ground truth."""
    from handssca.data import build_dataset
    from handssca.submit import read_dexycb_results

    s = train("dexycb", None, profile="smoke", out=home / "runs" / "dex", seed=0,
              overrides={"epochs": 1}, verbose=False)
    rep = evaluate(s.path, out=home / "dex-eval", verbose=False)
    assert rep["dataset"] == "dexycb" and rep["data"] == "synthetic"
    ds = build_dataset("dexycb", rep["data_root"], "test")
    raws = [ds.raw(i) for i in range(len(ds))]
    assert any(r.is_left for r in raws)
    idx, joints = read_dexycb_results(home / "dex-eval" / rep["submission"])
    gt = np.stack([r.joints3d for r in raws])
    np.testing.assert_array_equal(idx, ds.toolkit_index)
    np.testing.assert_allclose(joints[:, 0], gt[:, 0], atol=1e-9)  # on the ground-truth wrist
    err = np.linalg.norm(joints - gt, axis=-1).mean() * 1000.0
    # the file holds the joints as text with finite digits; metrics.json is computed before writing
    assert rep["metrics"]["mpjpe"] == pytest.approx(err, rel=1e-6)
    # un-mirrored: the network's own (mirrored, right-hand) prediction has x negated
    run = load_run(s.path)
    ds = build_dataset("dexycb", rep["data_root"], "test", input_size=run.spec.input_size)
    sample = ds.get(0, augment=False)[0]
    with torch.no_grad():
        j = run.model(sample["image"][None])["joints"][0].double().numpy()
    j = (j - j[:1]) * ([-1.0, 1.0, 1.0] if raws[0].is_left else [1.0, 1.0, 1.0])
    np.testing.assert_allclose(joints[0] - gt[0, :1], j, atol=1e-5)
