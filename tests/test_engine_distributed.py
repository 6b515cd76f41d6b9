"""Data-parallel training and evaluation under torchrun, on the CPU with gloo (two processes,
smoke profile, small synthetic FreiHAND-style data), and the parts of :mod:`.distributed` that
need no process group (batch split, sampler shares, the merge of the ranks' predictions).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from handssca.engine import distributed
from handssca.engine.datasets import EpochSampler

REPO = Path(__file__).resolve().parents[1]
SEED = 3
LOSS_KEYS = ("loss", "loss_vertices", "loss_joints", "loss_pose", "loss_shape", "loss_joints2d",
             "val_loss", "val_pa_mpjpe")
#: a parameter whose gradient is zero but for rounding (see the equivalence test)
SHIFT_FREE = "heatmap_head.score.bias"
#: a training of the smoke profile on the CPU (24 training rows: 6 steps per epoch at batch 4)
TRAIN = ["train", "--dataset", "freihand", "--profile", "smoke", "--seed", str(SEED),
         "--device", "cpu"]

# The network with BatchNorm in inference mode (running statistics, here their initial 0 and 1):
# with batch statistics a step of 2 x 2 samples normalises each half by its own mean and
# variance and a step of 4 by the mean of all 4, so the two runs would differ by design (the
# authors' per-GPU BatchNorm), and SyncBatchNorm, which would make them agree, has no CPU kernel.
# With the statistics fixed every sample's loss is independent of the others in its batch and
# the comparison tests what DDP must get right: the data split and the gradient average.
FROZEN_BN_DRIVER = """
import sys
import torch
import handssca.engine.trainer as trainer
from handssca.__main__ import main

build = trainer.build_model


def frozen_bn(**kwargs):
    model = build(**kwargs)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.train = lambda mode=True, m=m: torch.nn.Module.train(m, False)
            m.eval()
    return model


trainer.build_model = frozen_bn
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def data_root(home):
    """The smoke profile's synthetic FreiHAND-style data, generated once in this process."""
    from handssca.engine.datasets import ensure_synthetic

    return ensure_synthetic("freihand", "smoke", SEED, log=lambda m: None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args, nproc=2, env=None, timeout=240) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --nproc_per_node=<nproc> <args>`` (nproc 0: plain
    ``python <args>``), one CPU thread per process."""
    # this checkout's package, also for a script outside it (its folder comes first on sys.path)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    full = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)
    full.pop(distributed.FAULT_ENV, None)
    full.update(env or {})
    head = [sys.executable]
    if nproc:
        head += ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                 f"--master_port={_free_port()}"]
    return subprocess.run(head + list(args), cwd=str(REPO), env=full, capture_output=True,
                          text=True, timeout=timeout)


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def _rows(run):
    return [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def _weights(run):
    last = json.loads((Path(run) / "checkpoints" / "last.json").read_text())
    return load_file(str(Path(run) / "checkpoints" / last["weights"]))


# ----------------------------------------------------------------------------------------------
# without a process group
# ----------------------------------------------------------------------------------------------
def test_world_from_env_and_batch_split():
    assert distributed.world_from_env({}) == distributed.SINGLE
    assert distributed.world_from_env({"RANK": "0", "WORLD_SIZE": "1"}) == distributed.SINGLE
    w = distributed.world_from_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (w.rank, w.size, w.local_rank) == (1, 4, 1) and not w.is_main
    with pytest.raises(ValueError, match="RANK='x'"):
        distributed.world_from_env({"RANK": "x", "WORLD_SIZE": "2"})
    assert distributed.per_rank_batch(8, w) == 2
    with pytest.raises(ValueError, match=r"batch size 6 .* world size 4"):
        distributed.per_rank_batch(6, w)
    with pytest.raises(ValueError, match="HANDSSCA_FAULT_EXIT_RANK_AT_STEP"):
        distributed.maybe_inject_fault(w, 1, {distributed.FAULT_ENV: "one"})


def test_rank_shares_make_the_single_process_batches():
    """Rank r takes positions r, r+W, ... of the (seed, epoch) permutation: equal shares, no
    sample twice, and step k's per-rank batches together are the one-process batch k."""
    n, world_size, b = 11, 2, 2
    single = [i for _, i in EpochSampler(n, SEED).__iter__()]
    shares = []
    for r in range(world_size):
        s = distributed.RankSampler(n, SEED, distributed.World(r, world_size, r))
        s.set_epoch(0)
        shares.append([i for _, i in s])
        assert len(s) == len(shares[-1]) == n // world_size
    assert len(set(shares[0]) | set(shares[1])) == 2 * (n // world_size)
    for k in range(n // (world_size * b)):
        together = sorted(shares[0][k * b:(k + 1) * b] + shares[1][k * b:(k + 1) * b])
        assert together == sorted(single[k * world_size * b:(k + 1) * world_size * b])


def test_prediction_shares_cover_every_sample_once():
    n, size = 7, 3  # 7 = 3 + 2 + 2: the remainder on the first rank
    shares = [list(distributed.rank_share(n, distributed.World(r, size, r))) for r in range(size)]
    assert sorted(sum(shares, [])) == list(range(n))
    parts = [{"index": np.array(s), "joints": np.array(s, dtype=float) * 10} for s in shares]
    merged = distributed.merge_in_order(parts, n)
    assert merged["index"].tolist() == list(range(n))
    assert merged["joints"].tolist() == [10.0 * i for i in range(n)]
    with pytest.raises(RuntimeError, match="not each of the 7 once"):
        distributed.merge_in_order(parts + [parts[0]], n)


def test_sync_bn_on_cpu_is_refused_clearly(data_root, tmp_path):
    proc = _launch(["-m", "handssca"] + TRAIN + ["--out", str(tmp_path / "r"), "--sync-bn"],
                   nproc=0)
    assert proc.returncode == 2
    assert "--sync-bn needs CUDA" in proc.stderr and "on cpu" in proc.stderr


# ----------------------------------------------------------------------------------------------
# two processes under torchrun
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def equal_runs(home, data_root, tmp_path_factory):
    """One epoch (6 steps) with BatchNorm frozen: two processes of batch 2, one of batch 4."""
    d = tmp_path_factory.mktemp("ddp-equal")
    driver = d / "driver.py"
    driver.write_text(FROZEN_BN_DRIVER)
    args = TRAIN + ["--epochs", "1", "--batch-size", "4"]
    two = _launch([str(driver)] + args + ["--out", str(d / "two")])
    _ok(two)
    one = _launch([str(driver)] + args + ["--out", str(d / "one")], nproc=0)
    _ok(one)
    return d / "two", d / "one", two


def test_two_ranks_equal_one_process_of_twice_the_batch(equal_runs):
    two, one, proc = equal_runs
    record = json.loads((two / "run.json").read_text())
    assert record["parallel"] == {"world_size": 2, "per_rank_batch": 2, "global_batch": 4,
                                  "batchnorm": "per process"}
    assert "global batch 4 = 2 x 2 per process" in proc.stderr
    ra, rb = _rows(two), _rows(one)
    assert [r["train_samples"] for r in ra] == [r["train_samples"] for r in rb] == [24]
    # fp32 on the CPU: the two runs sum the same per-sample gradients in another order (two
    # half-batch backwards and gloo's all-reduce against one backward of 4), about 1e-7
    # relative per step. The epoch's mean losses then agree to ~1e-7 relative (bound 1e-5).
    # Adam divides each gradient by its own running size, which enlarges those 1e-7 where a
    # gradient is itself tiny: after 6 steps of lr 1e-3 the weights agree to a few 1e-5
    # (bound 1e-4), where other samples in a step, or a missing average, would move them by
    # about the step size, 1e-3. Left out: the bias of the heatmap scores, whose gradient is
    # zero but for rounding (the soft-argmax of the 2D joints ignores a constant added to a heatmap),
    # so Adam turns rounding noise into steps of lr there, whichever run it is.
    loss_diff = max(abs(x[k] - y[k]) / abs(y[k]) for x, y in zip(ra, rb) for k in LOSS_KEYS)
    assert loss_diff < 1e-5, loss_diff
    wa, wb = _weights(two), _weights(one)
    assert set(wa) == set(wb) and not any(k.startswith("module.") for k in wa)
    weight_diff = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa if k != SHIFT_FREE)
    print(f"max relative loss difference {loss_diff:.3g}, max abs weight difference "
          f"{weight_diff:.3g}")
    assert weight_diff < 1e-4, weight_diff


def test_killed_rank_fails_the_job_clearly_and_the_run_resumes(home, data_root, tmp_path):
    out = tmp_path / "run"
    # the same command each time (--resume continues an unfinished run, and starts a new one)
    cmd = ["-m", "handssca"] + TRAIN + ["--epochs", "3", "--out", str(out), "--resume"]
    # rank 1 dies before step 8: in epoch 2 (6 steps per epoch), after epoch 1's checkpoint
    failed = _launch(cmd, env={distributed.FAULT_ENV: "1:8"})
    assert failed.returncode != 0
    lines = [x for x in failed.stderr.splitlines() if x.startswith("error: rank 0 of 2")]
    assert len(lines) == 1, failed.stderr[-3000:]
    assert ("resumes from its last checkpoint" in lines[0]
            and "same command" in lines[0]), lines[0]
    assert json.loads((out / "checkpoints" / "last.json").read_text())["epoch"] == 1
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    # the same command on two processes resumes after epoch 1; rank 1 dies again, in epoch 3
    again = _launch(cmd, env={distributed.FAULT_ENV: "1:14"})
    assert again.returncode != 0 and "resuming" in again.stderr
    assert [r["epoch"] for r in _rows(out)] == [1, 2]
    # and one process (another world size) finishes it from the checkpoint of epoch 2
    last = _launch(cmd, nproc=0)
    _ok(last)
    assert "after epoch 2" in last.stderr
    assert [r["epoch"] for r in _rows(out)] == [1, 2, 3]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert not any(k.startswith("module.") for k in _weights(out))


def test_distributed_evaluation_writes_the_same_submission(equal_runs, tmp_path):
    """Four test samples over two processes. Batch 1 in both: a forward of one sample runs the
    same CPU kernels whatever process runs it (at batch 4 against 2, oneDNN's batch blocking
    moves the predictions by ~1e-7 m)."""
    run = equal_runs[1]
    args = ["-m", "handssca", "evaluate", "--checkpoint", str(run), "--device", "cpu",
            "--batch-size", "1", "--no-constants"]
    one = _launch(args + ["--out", str(tmp_path / "one")], nproc=0)
    _ok(one)
    two = _launch(args + ["--out", str(tmp_path / "two")])
    _ok(two)
    a, b = (tmp_path / "one" / "pred.json").read_bytes(), (tmp_path / "two" / "pred.json").read_bytes()
    assert a == b
    ma = json.loads((tmp_path / "one" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert ma["n_samples"] == mb["n_samples"] == 4 and ma["metrics"] == mb["metrics"]
    assert two.stdout.count("wrote ") == 1  # rank 0 alone reports
