"""``python -m handssca bench gpu``: without CUDA it stops with a clear message (and never
imports mamba-ssm); its measuring functions run on the CPU and return what the JSON reports."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from handssca.bench import gpu
from support import MAMBA_IMPORT_SPY


def test_without_cuda_it_fails_clearly_and_never_imports_mamba_ssm(tmp_path):
    out = tmp_path / "gpu.json"
    code = MAMBA_IMPORT_SPY + textwrap.dedent(f"""
        import torch
        torch.cuda.is_available = lambda: False  # as on a machine without CUDA
        from handssca.__main__ import main
        rc = main(["bench", "gpu", "--out", {str(out)!r}])
        assert not attempts and "mamba_ssm" not in sys.modules, attempts
        sys.exit(rc)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "CUDA is needed" in res.stderr
    assert 'pip install -e ".[cuda]"' in res.stderr
    for piece in ("MAMBA_FORCE_BUILD=TRUE", "--no-build-isolation", "--no-deps", "-gencode"):
        assert piece in res.stderr, piece
    assert not out.exists()


class TinyHandNet(nn.Module):
    """A stand-in for HandSSCA with its interface: parts named as the network's, a dict of
    predictions, and ``compute_loss`` returning "total"."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 3, stride=4)
        self.attention = nn.Identity()
        self.mano_head = nn.Linear(4, 48 + 10)

    def forward(self, images):
        f = self.attention(self.backbone(images)).mean((2, 3))
        out = self.mano_head(f)
        return {"pose": out[:, :48], "shape": out[:, 48:]}

    def compute_loss(self, pred, batch, weights=None):
        total = F.mse_loss(pred["pose"], batch["pose"]) + F.mse_loss(pred["shape"], batch["shape"])
        return {"total": total}


def test_training_throughput_runs_on_the_cpu():
    torch.manual_seed(0)
    model = TinyHandNet()
    before = model.mano_head.weight.detach().clone()
    res = gpu.training_throughput(model, 2, 32, torch.device("cpu"), steps=2, warmup=1)
    assert set(res) == {"images_per_s", "step_ms", "step_min_ms", "steps", "warmup", "batch",
                        "input_size", "loss", "peak_memory_bytes"}
    assert res["images_per_s"] > 0 and res["step_ms"] >= res["step_min_ms"] > 0
    assert res["steps"] == 2 and res["batch"] == 2 and res["peak_memory_bytes"] is None
    assert torch.isfinite(torch.tensor(res["loss"]))
    assert not torch.equal(model.mano_head.weight, before)  # Adam stepped


def test_scan_timings_floors_and_profile_on_the_cpu():
    dev = torch.device("cpu")
    table = {"spatial": (8, 32, 4), "channel": (4, 64, 2)}
    rows = gpu.time_scans(["reference", "chunked"], ["spatial", "channel"], 1, ["float32"], dev,
                          repeats=2, warmup=0, shape_table=table)
    assert [(r["shape"], r["backend"]) for r in rows] == [
        ("spatial", "reference"), ("spatial", "chunked"),
        ("channel", "reference"), ("channel", "chunked")]
    for r in rows:
        assert r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0 and r["fwd_bwd_bytes"] > r["fwd_bytes"] > 0
    # bytes: u, Delta, y (B, D, L) and B, C (B, G, N, L), fp32
    assert rows[0]["fwd_bytes"] == 4 * (3 * 8 * 32 + 2 * 4 * 16 * 32)
    totals = gpu.scan_totals(rows, bandwidth=1e9)
    chunked = next(t for t in totals if t["backend"] == "chunked")
    assert chunked["fwd_ms"] == pytest.approx(rows[1]["fwd_ms"] + rows[3]["fwd_ms"])
    assert chunked["memory_floor_fwd_ms"] == pytest.approx(
        1e3 * (rows[1]["fwd_bytes"] + rows[3]["fwd_bytes"]) / 1e9)
    assert "h100_floor_fwd_ms" not in chunked  # the H100 estimate is for batch 32 only
    assert gpu.copy_bandwidth(dev, nbytes=1 << 20, repeats=2) > 0

    model = TinyHandNet()
    data = gpu.synthetic_batch(2, 32, dev)
    summary = gpu.profile_summary(gpu.training_step_fn(model, data, dev), dev, steps=1, top=3)
    assert summary["time"] == "cpu" and 1 <= len(summary["top"]) <= 3
    assert all(0 < op["share"] <= 1 and op["ms"] > 0 for op in summary["top"])
    parts = gpu.part_times(model, data["image"], dev, repeats=1)
    assert set(parts) == {"backbone", "attention", "mano_head"} and all(
        v >= 0 for v in parts.values())


def test_fused_kernel_inputs_are_views_and_its_floor_counts_one_plane():
    from handssca.bench import scan as bs

    inp = bs.make_inputs(2, 4 * 3, 20, 4, torch.device("cpu"), torch.float32, False)
    p = gpu.plane_inputs(inp, (3, 4, 5))
    assert p["x"].shape == (2, 3, 4, 5) and p["delta"].shape == (2, 4, 3, 4, 5)
    assert p["A"].shape == (4, 3, bs.N_STATE) and p["B"].shape == (2, 4, bs.N_STATE, 4, 5)
    assert p["D"].shape == p["delta_bias"].shape == (4, 3)
    for name in ("delta", "A", "B", "C", "D", "delta_bias"):
        assert p[name].data_ptr() == inp["u" if name == "x" else name].data_ptr(), name
    assert torch.equal(p["x"][1, 2, 3], inp["u"][1, 2, 15:20])  # order 0's u, row-major
    table = {"spatial": (8, 16, 4)}
    for backward in (False, True):
        split = gpu.scan_bytes("spatial", 2, torch.float32, backward, table)
        fused = gpu.scan_bytes("spatial", 2, torch.float32, backward, table, fused=True)
        # u, y (and dy, du) shrink from 4 orders to one plane of 2 x 2 x 16 elements
        shrink = (2 if not backward else 5) * 3 * 2 * 2 * 16 * 4
        assert split - fused == shrink, (backward, split, fused)
