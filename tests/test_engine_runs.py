"""What the engine guarantees about the folders it writes and the data it scores (smoke profile,
small synthetic FreiHAND-style data, CPU):

- one writer per run folder: a second ``train`` into a folder in use is refused with the
  holder's PID, the folder is usable again once the holder died, and reusing a finished run
  needs no lock;
- checkpoint clean-up removes only the package's own checkpoint files;
- a run folder whose start failed before its first epoch takes the corrected configuration;
- a run recognises its synthetic data wherever it is, and refuses to score other data as its
  own held-out rows when its folder has moved;
- ``evaluate`` and ``predict`` never replace a file in a folder the user chose unless told to.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys

from pathlib import Path

import pytest

from handssca.__main__ import main as cli
from handssca.data.errors import DatasetLayoutError
from handssca.engine import checkpoint as ckpt
from handssca.engine import evaluate, predict, train
from handssca.engine.evaluation import RunDataMismatchError
from handssca.engine.runlock import RunFolderInUseError
from handssca.utils import OutputExistsError

REPO = Path(__file__).resolve().parents[1]
SEED = 5
ONE_EPOCH = {"epochs": 1}


@pytest.fixture(scope="module")
def data4(home):
    """Synthetic FreiHAND-style data of 4 samples (16 training images: 4 held out) in a folder
    of the user's, not the engine's own."""
    from handssca.data.synth import generate

    root = home / "my-data"
    generate("freihand", root, 4, seed=SEED, n_eval=2, show_progress=False)
    return root.resolve()


@pytest.fixture(scope="module")
def run4(home, data4):
    """A finished one-epoch run on ``data4``."""
    return train("freihand", data4, profile="smoke", out=home / "runs" / "r4", seed=SEED,
                 overrides=ONE_EPOCH, verbose=False)


@pytest.fixture
def holder():
    """Start a process that holds a run folder's lock (as a training run does) until killed."""
    procs = []

    def start(folder):
        code = ("import sys, time\n"
                "from handssca.engine.runlock import run_lock\n"
                "with run_lock(sys.argv[1]):\n"
                "    print('locked', flush=True)\n"
                "    time.sleep(600)\n")
        proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], env=dict(os.environ),
                                cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        procs.append(proc)
        line = proc.stdout.readline()
        assert line.strip() == "locked", proc.stderr.read()
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------------------------
def test_a_run_folder_in_use_is_refused_with_the_holders_pid(home, data4, run4, holder, capsys):
    out = home / "runs" / "locked"
    proc = holder(out)
    in_use = f"run folder {out.resolve()} is in use by PID {proc.pid} "
    with pytest.raises(RunFolderInUseError, match=re.escape(in_use)):
        train("freihand", data4, profile="smoke", out=out, seed=SEED, overrides=ONE_EPOCH,
              verbose=False)
    assert cli(["train", "--dataset", "freihand", "--data-root", str(data4), "--profile", "smoke",
                "--seed", str(SEED), "--epochs", "1", "--out", str(out)]) == 2
    assert f"is in use by PID {proc.pid}" in capsys.readouterr().err
    assert not (out / "run.json").exists()  # nothing was written into the folder in use
    # the holder dies without a word (SIGKILL): the lock goes with it, the folder is usable
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = train("freihand", data4, profile="smoke", out=out, seed=SEED, overrides=ONE_EPOCH,
                 verbose=False)
    assert done["status"] == "complete" and not done["reused"]
    # a finished run is reused without the lock: a process holding it does not stop readers
    holder(run4.path)
    again = train("freihand", data4, profile="smoke", out=run4.path, seed=SEED,
                  overrides=ONE_EPOCH, verbose=False)
    assert again["reused"] and again["final"] == run4["final"]


def test_checkpoint_clean_up_removes_only_its_own_files(run4):
    d = ckpt.checkpoint_dir(run4.path)
    mine = [d / "notes.txt", d / ".my-settings", d / ".notes.txt.abcd1234.tmp"]
    for p in mine:
        p.write_text("the user's")
    stale = [d / ".epoch-0009.safetensors.abcd1234.tmp", d / ".last.json.x1y2z3w4.tmp",
             d / "epoch-0009.state.pt"]  # a killed write's leftovers, no JSON points to them
    for p in stale:
        p.write_text("left by a killed write")
    kept = {p.name for p in d.iterdir()} - {p.name for p in mine + stale}
    ckpt.prune(run4.path)
    assert {p.name for p in d.iterdir()} == kept | {p.name for p in mine}
    for p in mine:
        assert p.read_text() == "the user's"
        p.unlink()


def test_a_start_that_failed_before_its_first_epoch_takes_the_corrected_configuration(
        home, data4):
    out = home / "runs" / "failed-start"
    empty = home / "empty-data"
    empty.mkdir()
    with pytest.raises(DatasetLayoutError):
        train("freihand", empty, profile="smoke", out=out, seed=SEED, overrides=ONE_EPOCH,
              verbose=False)
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    fixed = train("freihand", data4, profile="smoke", out=out, seed=SEED, overrides=ONE_EPOCH,
                  verbose=False)
    assert fixed["status"] == "complete" and fixed["data_root"] == str(data4)
    assert json.loads((out / "run.json").read_text())["config"]["data"]["root"] == data4.name
    # once an epoch is saved, another configuration is refused as before
    with pytest.raises(ValueError, match="another configuration"):
        train("freihand", empty, profile="smoke", out=out, seed=SEED, overrides=ONE_EPOCH,
              verbose=False)


# ----------------------------------------------------------------------------------------------
def test_held_out_rows_of_moved_data_are_refused_not_substituted(home, run4, data4, capsys):
    before = evaluate(run4.path, split="val", verbose=False)
    assert before["n_samples"] == 4 and before["data_root"] == str(data4)
    moved = home / "moved-data"
    shutil.move(str(data4), str(moved))
    try:
        with pytest.raises(RunDataMismatchError) as err:
            evaluate(run4.path, split="val", verbose=False)
        msg = str(err.value)
        assert str(data4) in msg and "n 4" in msg and "n 8" in msg and "--data-root" in msg
        assert cli(["evaluate", "--checkpoint", str(run4.path), "--split", "val"]) == 2
        assert "--data-root" in capsys.readouterr().err
        # the run's data at its new place is recognised as the run's own
        again = evaluate(run4.path, split="val", data_root=moved, out=home / "val-moved",
                         verbose=False)
        assert again["n_samples"] == 4
        assert again["metrics"]["pa_mpjpe"] == pytest.approx(before["metrics"]["pa_mpjpe"])
    finally:
        shutil.move(str(moved), str(data4))


def test_evaluate_never_replaces_a_users_file_unless_told(run4, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    mine = out / "metrics.json"
    mine.write_text("my notes")
    with pytest.raises(OutputExistsError, match=re.escape(f"{mine} exists already")):
        evaluate(run4.path, out=out, verbose=False)
    argv = ["evaluate", "--checkpoint", str(run4.path), "--out", str(out), "--no-constants"]
    assert cli(argv) == 2
    assert f"{mine} exists already" in capsys.readouterr().err
    assert mine.read_text() == "my notes" and not (out / "pred.json").exists()
    assert cli(argv + ["--overwrite"]) == 0
    assert json.loads(mine.read_text())["dataset"] == "freihand"


def test_predict_never_replaces_a_users_file_unless_told(run4, data4, tmp_path, capsys):
    image = data4 / "evaluation" / "rgb" / "00000000.jpg"
    out = tmp_path / "hands"
    out.mkdir()
    mine = out / "00000000.json"
    mine.write_text("my notes")
    with pytest.raises(OutputExistsError, match=re.escape(f"{mine} exists already")):
        predict(image, run4.path, out, overlay=False, verbose=False)
    argv = ["predict", str(image), "--checkpoint", str(run4.path), "--out", str(out),
            "--no-overlay"]
    assert cli(argv) == 2
    assert f"{mine} exists already" in capsys.readouterr().err
    assert mine.read_text() == "my notes" and sorted(p.name for p in out.iterdir()) == [mine.name]
    assert cli(argv + ["--overwrite"]) == 0
    assert len(json.loads(mine.read_text())["joints"]) == 21
