"""``python -m handssca bench model`` runs end to end (small input, one round) and writes its
ratios both ways: min time over min trunk time, and the median of per-round ratios."""
from __future__ import annotations

import argparse
import json

import pytest
import torch

from handssca.bench import model as bench_model


def test_bench_model_writes_min_and_median_ratios(tmp_path, capsys):
    p = argparse.ArgumentParser()
    bench_model.add_arguments(p)
    out = tmp_path / "model.json"
    args = p.parse_args(["--input-size", "128", "--quick", "--repeats", "2", "--warmup", "0",
                         "--clock", "cpu", "--threads", "1", "--out", str(out)])
    threads = torch.get_num_threads()
    try:
        assert bench_model.run(args) == 0
    finally:
        torch.set_num_threads(threads)
    payload = json.loads(out.read_text())
    assert payload["clock"] == "cpu" and payload["input_size"] == 128
    times, ratios = payload["times"], payload["ratios"]
    assert ratios["whole_over_trunk"] == pytest.approx(
        times["whole_b1"]["min_s"] / times["trunk"]["min_s"])
    assert set(payload["ratios_median"]) == set(ratios)
    assert payload["throughput"]["images_per_s_b1"] == pytest.approx(
        1 / times["whole_b1"]["min_s"])
    assert payload["targets_met"]["whole_over_trunk"] == (ratios["whole_over_trunk"] <= 1.5)
    assert "whole / trunk" in capsys.readouterr().out
