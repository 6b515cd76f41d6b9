"""The ablation runner of Tables 4-6: one run per (variant, seed) on the same data, shared by the
chapters that need the same runs, scored per seed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from handssca.data.synth.ho3d import sequence_plan
from handssca.engine import TABLE_VARIANTS, ablation_table, evaluate_variants, train_variants


@pytest.fixture(scope="module")
def runs(home):
    return train_variants("ho3d", ["none", "ssca"], seeds=[0, 1], profile="smoke",
                          overrides={"epochs": 1}, verbose=False)


def test_ablation_tables_name_the_papers_rows():
    assert ablation_table("FreiHAND") == 4 and ablation_table("dexycb") == 5
    assert ablation_table("ho3d") == 6
    assert TABLE_VARIANTS[6] == ("none", "self_attention", "ssa", "ssca")
    with pytest.raises(ValueError, match="dataset must be one of"):
        ablation_table("coco")


def test_one_run_per_variant_and_seed_on_the_same_data(runs, home):
    assert list(runs) == [("none", 0), ("none", 1), ("ssca", 0), ("ssca", 1)]
    configs = {k: json.loads((s.path / "run.json").read_text())["config"] for k, s in runs.items()}
    assert len({str(s.path) for s in runs.values()}) == 4
    assert {c["data"]["root"] for c in configs.values()} == {"ho3d-smoke-0"}  # seed 1 too
    assert [c["seed"] for c in configs.values()] == [0, 1, 0, 1]
    assert [c["attention"] for c in configs.values()] == ["none", "none", "ssca", "ssca"]
    assert all(Path(s.path).is_relative_to(home) for s in runs.values())


def test_a_second_call_reuses_the_runs(runs):
    again = train_variants("ho3d", ["ssca"], seeds=[1], data_seed=0, profile="smoke",
                           overrides={"epochs": 1}, verbose=False)
    assert again[("ssca", 1)]["reused"] is True
    assert again[("ssca", 1)].path == runs[("ssca", 1)].path


def test_evaluate_variants_gathers_one_value_per_seed(runs):
    res = evaluate_variants(runs)
    # synthetic HO3D-style data carries its evaluation ground truth as HO3D released it
    assert res["split"] == "test" and res["data"] == "synthetic"
    for v in ("none", "ssca"):
        assert len(res["metrics"][v]["pa_mpjpe"]) == 2
        assert all(x > 0 for x in res["metrics"][v]["pa_mpjpe"])
        assert len(res["baseline"][v]["pa_mpjpe"]) == 2
        assert len(res["baseline_mean_articulation"][v]["pa_mpjpe"]) == 2
    # the constants depend on a seed's training rows, not on the variant
    assert res["baseline"]["none"] == res["baseline"]["ssca"]
    assert set(res["reports"]) == set(runs)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown attention variant 'mamba'"):
        train_variants("ho3d", ["mamba"], seeds=[0], profile="smoke")
    with pytest.raises(ValueError, match="at least one seed"):
        train_variants("ho3d", ["ssca"], seeds=[], profile="smoke")


@pytest.mark.parametrize("n,fps,expect", [(32, 8, (3, 1)), (1500, None, (24, 6)), (2, None, (1, 1))])
def test_ho3d_sequence_plan(n, fps, expect):
    train, evaluation = sequence_plan(n, fps)
    assert (len(train), len(evaluation)) == expect
    assert sum(train) + sum(evaluation) == n
    with pytest.raises(ValueError, match="frames_per_sequence"):
        sequence_plan(n, 0)


def test_runs_trained_in_parallel_processes_equal_sequential_ones(runs, home, tmp_path):
    """jobs=2 trains each run in a process of its own; on the CPU each run is still a function of
    its configuration alone, so it equals the run trained in this process."""
    parallel = train_variants("ho3d", ["none", "ssca"], seeds=[2], data_seed=0, profile="smoke",
                              overrides={"epochs": 1}, verbose=False, jobs=2)
    assert [parallel[k]["reused"] for k in parallel] == [False, False]
    alone = train_variants("ho3d", ["ssca"], seeds=[2], data_seed=0, profile="smoke",
                           overrides={"epochs": 1}, verbose=False, jobs=1,
                           out=tmp_path / "alone")
    assert alone[("ssca", 2)].path != parallel[("ssca", 2)].path
    assert alone[("ssca", 2)]["final"]["loss"] == parallel[("ssca", 2)]["final"]["loss"]
    with pytest.raises(ValueError, match="callback"):
        train_variants("ho3d", ["none", "ssca"], seeds=[2], data_seed=0, profile="smoke",
                       overrides={"epochs": 1}, jobs=2, callback=print)
