"""``python -m handssca bench scan`` runs end to end (on shrunken shapes) and writes its JSON."""
from __future__ import annotations

import argparse
import json

import pytest

from handssca.bench import scan as bench_scan


def parse(argv):
    p = argparse.ArgumentParser()
    bench_scan.add_arguments(p)
    return p.parse_args(argv)


def test_bench_scan_writes_figures_for_each_backend(tmp_path, monkeypatch, capsys):
    # the real shapes take minutes with the reference; the code path is the same
    monkeypatch.setattr(bench_scan, "SHAPES", {"spatial": (8, 32, 4), "channel": (4, 64, 2)})
    out = tmp_path / "scan.json"
    rc = bench_scan.run(parse(["--repeats", "2", "--warmup", "0", "--batch", "1",
                               "--out", str(out)]))
    assert rc == 0
    payload = json.loads(out.read_text())
    assert payload["hardware"]["cpu_count"] >= 1 and "peak" in payload["memory_method"]
    rows = payload["results"]
    assert [(r["shape"], r["backend"]) for r in rows] == [
        ("spatial", "reference"), ("spatial", "chunked"), ("spatial", "fused"),
        ("channel", "reference"), ("channel", "chunked"), ("channel", "fused")]
    for r in rows:
        assert r["fwd_s"] > 0 and r["fwd_bwd_s"] > 0 and len(r["fwd_times_s"]) == 2
        assert r["fwd_peak_bytes"] > 0 and r["fwd_bwd_peak_bytes"] > r["fwd_peak_bytes"]
        assert r["speedup_fwd"] == pytest.approx(
            rows[0 if r["shape"] == "spatial" else 3]["fwd_s"] / r["fwd_s"])
    printed = capsys.readouterr().out
    assert "speed-up" in printed and "chunked" in printed and "fused" in printed


def test_bench_scan_refuses_unknown_backends(tmp_path, capsys):
    assert bench_scan.run(parse(["--backends", "nope", "--out", str(tmp_path / "x.json")])) == 2
    assert "unknown backends" in capsys.readouterr().err


def test_bench_scan_cpu_clock_without_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_scan, "SHAPES", {"spatial": (8, 32, 4), "channel": (4, 64, 2)})
    out = tmp_path / "scan.json"
    assert bench_scan.run(parse(["--quick", "--clock", "cpu", "--no-memory", "--backends",
                                 "chunked", "--shapes", "channel", "--out", str(out)])) == 0
    payload = json.loads(out.read_text())
    assert payload["clock"] == "cpu" and payload["memory_method"] is None
    (row,) = payload["results"]
    assert row["backend"] == "chunked" and row["fwd_peak_bytes"] is None and row["fwd_s"] > 0
    assert "speedup_fwd" not in row  # no reference measured alongside


def test_bench_train_times_each_backend(tmp_path, capsys):
    from handssca.bench import train as bench_train

    p = argparse.ArgumentParser()
    bench_train.add_arguments(p)
    out = tmp_path / "train.json"
    args = p.parse_args(["--profile", "smoke", "--batch", "2", "--repeats", "2", "--warmup", "0",
                         "--out", str(out)])
    assert bench_train.run(args) == 0
    payload = json.loads(out.read_text())
    assert payload["batch"] == 2 and payload["input_size"] == 128 and payload["commit"]
    rows = {r["backend"]: r for r in payload["results"]}
    assert set(rows) == {"chunked", "fused"}
    assert rows["chunked"]["over_chunked"] == 1.0
    for r in rows.values():
        assert len(r["times_s"]) == 2 and r["min_s"] == min(r["times_s"]) > 0
        assert r["images_per_s"] == pytest.approx(2 / r["min_s"])
    assert "fused" in capsys.readouterr().out
    bad = p.parse_args(["--profile", "smoke", "--backends", "mamba", "--out", str(out)])
    assert bench_train.run(bad) == 2
