"""Every failure a user meets says what and where: the file or value, what was expected and
what to do, in one line from the command line (no traceback).

Divergence, bad numeric options, a full disk, damaged run files (JSON, safetensors), a hostile
training state, a file or folder where the other is expected, bad network input, a MANO file of
the other hand, the advice on corrupt samples, and Ctrl-C.
"""
from __future__ import annotations

import errno
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch._dynamo

from handssca.__main__ import main as cli
from handssca.engine import checkpoint as ckpt
from handssca.errors import DamagedFileError, DiskFullError, UnsafeFileError
from handssca.models import build_model

SEED = 5
SMOKE = ["--dataset", "freihand", "--profile", "smoke", "--seed", str(SEED)]


@pytest.fixture(scope="module")
def hand():
    from handssca.hand import load_hand_model

    return load_hand_model()


@pytest.fixture(scope="module")
def data_root(home):
    """Synthetic FreiHAND-style data of the smoke profile (the data ``train`` picks for SEED)."""
    from handssca.engine.datasets import ensure_synthetic

    return ensure_synthetic("freihand", "smoke", SEED, log=lambda m: None)


def _tiny(hand):
    return build_model(attention="none", input_size=128, C=16, hourglass_depth=1,
                       backbone={"kind": "light", "widths": [8, 8, 16, 16, 32]}, hand_model=hand)


def _run_with_checkpoint(folder: Path, hand) -> Path:
    """A run folder holding one checkpoint of a tiny network; returns its last.json."""
    model = _tiny(hand)
    return ckpt.write_checkpoint(folder, model, {"network": model.config.to_dict(),
                                                 "dataset": "freihand", "data": "synthetic"},
                                 epoch=1, state={"epoch": 1, "step": 1})


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# ---------------------------------------------------------------------------------------------
# divergence and numeric options
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lr", ["inf", "nan", "-1", "0", "-inf"])
def test_lr_must_be_positive_and_finite(lr, monkeypatch, capsys, home):
    import handssca.engine.trainer as trainer

    def no_training(*a, **k):
        raise AssertionError(f"training started with --lr {lr}")

    monkeypatch.setattr(trainer, "train", no_training)
    assert cli(["train", *SMOKE, f"--lr={lr}"]) == 2
    assert f"--lr must be a positive finite number (e.g. 1e-4), got {float(lr)}" in \
        _one_error_line(capsys)


@pytest.mark.parametrize("each_step, where", [(True, "at step 1 (epoch 1, batch 1)"),
                                              (False, "in epoch 1")])  # False: as on a GPU
def test_divergence_names_the_step_the_loss_and_what_to_do(each_step, where, data_root, tmp_path,
                                                           monkeypatch, capsys):
    import handssca.engine.trainer as trainer
    from handssca.models.network import HandSSCA

    real = HandSSCA.compute_loss

    def nan_loss(self, *args, **kwargs):
        terms = real(self, *args, **kwargs)
        terms["total"] = terms["total"] * float("nan")
        return terms

    monkeypatch.setattr(HandSSCA, "compute_loss", nan_loss)
    monkeypatch.setattr(trainer, "check_every_step", lambda device: each_step, raising=False)
    assert cli(["train", *SMOKE, "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    err = _one_error_line(capsys)
    assert f"training diverged: the loss is nan {where};" in err
    assert "Lower the learning rate (--lr, now 0.001" in err and str(data_root) in err
    assert "contains NaN" not in err


# ---------------------------------------------------------------------------------------------
# a full disk
# ---------------------------------------------------------------------------------------------
def _no_space_oserror():
    return OSError(errno.ENOSPC, "No space left on device")


def _no_space_safetensors():
    from safetensors import SafetensorError

    return SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                           'message: "No space left on device" })')


@pytest.mark.parametrize("error", [_no_space_oserror, _no_space_safetensors])
def test_full_disk_on_weights_names_the_file_and_keeps_the_last_checkpoint(tmp_path, hand,
                                                                           monkeypatch, error):
    import safetensors.torch

    last = _run_with_checkpoint(tmp_path, hand)
    before = last.read_bytes()

    def full(*args, **kwargs):
        raise error()

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    model = _tiny(hand)
    with pytest.raises(DiskFullError) as e:
        ckpt.write_checkpoint(tmp_path, model, {"network": model.config.to_dict()}, epoch=2)
    msg = str(e.value)
    assert str(tmp_path / "checkpoints" / "epoch-0002.safetensors") in msg
    assert "the disk is full" in msg and "run the same command again" in msg
    assert last.read_bytes() == before
    monkeypatch.undo()
    assert ckpt.load_weights(_tiny(hand), tmp_path)["epoch"] == 1  # hash checked


def test_full_disk_in_torch_save_names_the_state_file(tmp_path, hand, monkeypatch):
    _run_with_checkpoint(tmp_path, hand)

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1472 vs 1360")

    monkeypatch.setattr(torch, "save", full)
    model = _tiny(hand)
    with pytest.raises(DiskFullError, match=r"epoch-0002\.state\.pt: the disk is full"):
        ckpt.write_checkpoint(tmp_path, model, {"network": model.config.to_dict()}, epoch=2,
                              state={"epoch": 2})
    assert json.loads((tmp_path / "checkpoints" / "last.json").read_text())["epoch"] == 1
    assert not list((tmp_path / "checkpoints").glob(".*"))  # no temporary file left


def test_full_disk_on_a_submission_names_it_and_keeps_the_old_one(tmp_path, monkeypatch):
    import handssca.submit as submit

    joints, verts = np.zeros((2, 21, 3)), np.zeros((2, 778, 3))
    path = submit.write_freihand_pred(tmp_path / "pred.json", joints, verts)
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(submit.os, "fsync", full)
    with pytest.raises(DiskFullError, match=r"pred\.json: the disk is full"):
        submit.write_freihand_pred(path, joints + 1, verts)
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]


def test_full_disk_during_train_is_one_line(data_root, tmp_path, monkeypatch, capsys):
    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    assert cli(["train", *SMOKE, "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    err = _one_error_line(capsys)
    assert "epoch-0001.state.pt: the disk is full" in err and "inline_container" not in err
    assert err.rstrip().endswith("run the same command again, with --resume to continue from "
                                 "the last checkpoint")


# ---------------------------------------------------------------------------------------------
# damaged files of a run
# ---------------------------------------------------------------------------------------------
def test_truncated_last_json_names_the_file(tmp_path, hand, capsys):
    last = _run_with_checkpoint(tmp_path, hand)
    last.write_text(last.read_text()[:40])
    assert cli(["evaluate", "--checkpoint", str(tmp_path)]) == 2
    err = _one_error_line(capsys)
    assert f"{last} is damaged: not valid JSON" in err
    assert "delete its checkpoints/ folder" in err


def test_truncated_run_json_names_the_file(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"config": {"dataset": "freih')
    assert cli(["train", *SMOKE, "--out", str(run)]) == 2
    err = _one_error_line(capsys)
    assert f"{run / 'run.json'} is damaged: not valid JSON" in err
    assert "delete the run folder and train again" in err


def test_truncated_safetensors_without_hash_names_the_file(tmp_path, hand, capsys):
    last = _run_with_checkpoint(tmp_path, hand)
    rec = json.loads(last.read_text())
    del rec["weights_sha256"]
    last.write_text(json.dumps(rec))
    weights = last.parent / rec["weights"]
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(DamagedFileError, match="not a readable safetensors file"):
        ckpt.load_weights(_tiny(hand), tmp_path)
    assert cli(["evaluate", "--checkpoint", str(tmp_path)]) == 2
    assert f"{weights} is damaged" in _one_error_line(capsys)


def test_damaged_run_log_names_the_file_and_line(tmp_path):
    from handssca.engine.runlog import read_log

    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "loss": 2.5}\n{"epoch": 2, "lo\n')
    with pytest.raises(DamagedFileError, match=r"metrics\.jsonl is damaged: line 2 is not valid "
                                               r"JSON.*Delete the file"):
        read_log(tmp_path)


class _NotATensor:
    """An object torch's safe loader refuses."""


def test_hostile_state_is_refused_without_torchs_hint(tmp_path):
    path = tmp_path / "epoch-0001.state.pt"
    torch.save({"epoch": 1, "rng": _NotATensor()}, str(path))
    with pytest.raises(UnsafeFileError) as e:
        ckpt.load_state(path)
    msg = str(e.value)
    assert f"{path} holds objects other than tensors" in msg and "was not loaded" in msg
    assert "weights_only" not in msg and e.value.__cause__ is None
    assert e.value.__suppress_context__


def test_resume_from_a_hostile_state_is_one_line(data_root, tmp_path, capsys):
    from handssca.engine import train

    class Stop(Exception):
        pass

    def stop_after_first_epoch(event):
        if event["kind"] == "epoch":
            raise Stop

    out = tmp_path / "run"
    with pytest.raises(Stop):
        train("freihand", None, profile="smoke", out=out, seed=SEED, overrides={"epochs": 2},
              callback=stop_after_first_epoch, verbose=False)
    state = ckpt.checkpoint_dir(out) / json.loads(
        (ckpt.checkpoint_dir(out) / "last.json").read_text())["state"]
    torch.save({"epoch": 1, "rng": _NotATensor()}, str(state))
    assert cli(["train", *SMOKE, "--epochs", "2", "--out", str(out), "--resume"]) == 2
    err = _one_error_line(capsys)
    assert f"{state} holds objects other than tensors" in err and "weights_only" not in err


def test_damaged_state_names_the_file(tmp_path):
    path = tmp_path / "epoch-0001.state.pt"
    torch.save({"epoch": 1}, str(path))
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DamagedFileError, match="epoch-0001.state.pt is damaged"):
        ckpt.load_state(path)


# ---------------------------------------------------------------------------------------------
# a file where a folder is expected, and the other way round
# ---------------------------------------------------------------------------------------------
def test_train_out_file_is_refused(tmp_path, capsys, home):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    assert cli(["train", *SMOKE, "--out", str(f)]) == 2
    assert f"--out {f} is a file; expected a folder" in _one_error_line(capsys)
    assert f.read_text() == "mine"


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_evaluate_and_predict_out_file_is_refused(command, tmp_path, hand, capsys, home):
    _run_with_checkpoint(tmp_path / "run", hand)
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    image = tmp_path / "hand.png"
    image.write_bytes(b"")  # never read: the --out check comes first
    argv = ([command, "--checkpoint", str(tmp_path / "run"), "--out", str(f)]
            + ([str(image)] if command == "predict" else []))
    assert cli(argv) == 2
    assert f"--out {f} is a file; expected a folder" in _one_error_line(capsys)
    assert f.read_text() == "mine"


def test_predict_folder_says_it_is_a_folder(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    assert cli(["predict", str(tmp_path / "images"), "--checkpoint", str(tmp_path / "run"),
                "--out", str(tmp_path / "out")]) == 2
    err = _one_error_line(capsys)
    assert f"{tmp_path / 'images'} is a folder; expected image files (PNG, JPEG, ...)" in err
    assert "image not found" not in err


# ---------------------------------------------------------------------------------------------
# the network's input
# ---------------------------------------------------------------------------------------------
def test_network_names_dtype_batch_and_nan(hand):
    model = _tiny(hand).eval()
    with pytest.raises(ValueError, match=r"\(B, 3, 128, 128\) float32.*got dtype \(1, 3, 128, "
                                         r"128\) float64"):
        model(torch.zeros(1, 3, 128, 128, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"B >= 1.*got shape \(0, 3, 128, 128\)"):
        model(torch.zeros(0, 3, 128, 128))
    x = torch.zeros(2, 3, 128, 128)
    x[1, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="hold NaN or infinite values"):
        model(x)
    x[1, 0, 5, 5] = float("inf")
    with pytest.raises(ValueError, match="hold NaN or infinite values"):
        model(x)
    with torch.no_grad():  # a good batch still runs
        assert model(torch.zeros(1, 3, 128, 128))["vertices"].shape == (1, 778, 3)
    # the value test is left out while torch.compile records a graph: no graph break
    def checked(images):
        model.check_images(images)
        return images * 2

    torch._dynamo.reset()
    explained = torch._dynamo.explain(checked)(torch.zeros(1, 3, 128, 128))
    assert explained.graph_break_count == 0 and explained.graph_count == 1


# ---------------------------------------------------------------------------------------------
# a MANO file of the other hand
# ---------------------------------------------------------------------------------------------
def _mano_pickle(data: dict) -> bytes:
    """A MANO-format dict pickled as MANO's files are (its sparse J_regressor kept sparse)."""
    return pickle.dumps(dict(data), protocol=2)


@pytest.mark.parametrize("name, saved", [("MANO_RIGHT.pkl", "left"), ("MANO_LEFT.pkl", "right")])
def test_mano_file_of_the_other_hand_is_refused(tmp_path, name, saved):
    from handssca.hand import ManoFileError, load_hand_model
    from handssca.hand.model_data import mirror_mano_data, procedural_mano_data

    right = procedural_mano_data(True)
    data = right if saved == "right" else mirror_mano_data(right)
    path = tmp_path / name
    path.write_bytes(_mano_pickle(data))
    expected = "right" if "RIGHT" in name else "left"
    with pytest.raises(ManoFileError, match=f"{path}: expected a {expected} hand, but the file "
                                            f"holds a {saved} hand"):
        load_hand_model(path, is_rhand=expected == "right", cache_dir=tmp_path / "cache")
    # the same content under its own name loads
    own = tmp_path / "own" / f"MANO_{saved.upper()}.pkl"
    own.parent.mkdir()
    own.write_bytes(path.read_bytes())
    assert load_hand_model(own, is_rhand=saved == "right", cache_dir=tmp_path / "cache").kind == "mano"


# ---------------------------------------------------------------------------------------------
# advice a user can follow, and Ctrl-C
# ---------------------------------------------------------------------------------------------
def test_too_many_corrupt_samples_advises_what_a_user_can_do():
    from handssca.data.errors import SkipCounter, TooManySkippedError

    counter = SkipCounter("FreiHAND train", 10, 0.0)
    with pytest.warns(RuntimeWarning), pytest.raises(TooManySkippedError) as e:
        counter.record(3, "00000003", "truncated PNG")
    msg = str(e.value)
    assert "raise max_skip" not in msg
    assert "Re-download or re-extract the files" in msg and "00000003" in msg


@pytest.mark.parametrize("argv, target, hint", [
    (["train", *SMOKE], "handssca.engine.trainer.train",
     "interrupted; the run resumes from its last checkpoint (the last completed epoch) with the "
     "same command and --resume"),
    (["evaluate", "--checkpoint", "run"], "handssca.engine.evaluation.evaluate", "interrupted"),
])
def test_ctrl_c_is_one_line_and_exit_130(argv, target, hint, monkeypatch, capsys, home):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(target, interrupted)
    try:
        status = cli(argv)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped the command line as a traceback")
    assert status == 130
    err = _one_error_line(capsys)
    assert err.strip() == hint
