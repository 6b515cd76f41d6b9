"""Result files of Tables 1-6 gathered from a folder, parameter counts of the paper's
configuration, the spread over seeds, and what compare_table does with them."""
import json
import math

import numpy as np
import pytest

from handssca.report import (compare_table, format_value, hardware_label, load_table_results,
                             paper_cells, paper_table, parameter_counts, results_table,
                             runs_hardware, seed_separation, spread_table, table_parameters,
                             table_verdicts, write_result)


def _col(table, label):
    return table.header.index(label)


def _rows(table):
    return {r[0]: r for r in table.rows}


def test_format_value_per_unit():
    assert format_value(9.5, "mm") == "9.50"
    assert format_value(51.8, "%") == "51.8%"
    assert format_value(0.58, "M") == "0.58M" and format_value(31.8, "M") == "31.8M"
    assert format_value(None, "mm") == "-" and format_value(float("nan"), "%") == "-"


def test_aligned_f_scores_fill_the_papers_f_columns():
    raw = {"pa_mpjpe": 10.0, "f5": 0.1, "f5_aligned": 0.5, "f15": 0.2, "f15_aligned": 0.9}
    cells = paper_cells(raw)
    assert cells["f5"] == 0.5 and cells["f15"] == 0.9 and cells["pa_mpjpe"] == 10.0
    assert paper_cells({"f5": 0.3})["f5"] == 0.3  # already in the paper's columns
    t = compare_table(6, {"ssca": raw}, data="synthetic", profile="smoke", hardware="CPU")
    assert _rows(t)["Baseline+SSCA"][_col(t, "F@5 ours")] == "50.0%"
    assert _rows(t)["Baseline+SSCA"][_col(t, "F@15 ours")] == "90.0%"


def test_compare_table_counts_are_not_seeds_and_name_the_data_in_the_caption():
    ours = {"ssca": {"pa_mpjpe": [9.0, 10.0], "params": 578_304},
            "none": {"pa_mpjpe": [11.0, 12.0], "params": 0}}
    t = compare_table(6, ours, data="synthetic", profile="quick", hardware="CPU")
    assert "SYNTHETIC" in t.caption
    assert any("2 seed(s) per cell" in n for n in t.notes)  # the single-valued count is no seed
    assert any(n.startswith("#Params") for n in t.notes)
    rows = _rows(t)
    i = _col(t, "#Params ours")
    assert rows["Baseline+SSCA"][i] == "0.58M"
    fpn = rows["Baseline (FPN only)"]
    assert fpn[i] == "0.00M" and fpn[i - 1] == "-"  # unit from other rows
    counted = compare_table(1, {"HandSSCA (paper)": {"params": 30_864_852}}, data="n/a",
                            profile="n/a", hardware="n/a")
    assert "nothing run" in counted.caption and "#Params counted" in counted.caption
    r = _rows(counted)["HandSSCA (paper)"]
    assert r[_col(counted, "#Params ours")] == "30.9M"
    assert r[_col(counted, "PA-MPJPE (mm) ours")] == "not run"
    assert "real data" in compare_table(2, {}, data="real", profile="paper", hardware="GPU").caption


def _write_train(folder, dataset="ho3d", **extra):
    metrics = {"pa_mpjpe": 12.0, "pa_mpvpe": 13.0, "mpjpe": 20.0, "f5": 0.1, "f5_aligned": 0.4,
               "f15": 0.3, "f15_aligned": 0.8, "pa_mpjpe_auc": 0.7, "pa_mpvpe_auc": 0.6}
    return write_result(folder / f"train-{dataset}.json", kind=f"train/{dataset}",
                        data="synthetic", profile="quick", metrics=metrics, seeds=[0],
                        baseline={"pa_mpjpe": 20.0, "f5_aligned": 0.2},
                        baseline_mean_articulation={"pa_mpjpe": 15.0, "f5_aligned": 0.3},
                        hardware="CPU (test)", **extra)


def _write_ablation(folder, dataset="ho3d", variants=("none", "ssa", "ssca", "extra")):
    metrics = {v: {"pa_mpjpe": [10.0 + i, 11.0 + i], "f5_aligned": [0.5, 0.6]}
               for i, v in enumerate(variants)}
    return write_result(folder / f"ablation-{dataset}.json", kind=f"ablation/{dataset}",
                        data="real", profile="paper", metrics=metrics, seeds=[0, 1],
                        params={v: 1 for v in variants}, hardware="NVIDIA H100",
                        split="test")


def test_an_empty_folder_gives_not_run_everywhere(tmp_path):
    found = load_table_results(tmp_path)
    assert sorted(found) == [1, 2, 3, 4, 5, 6]
    assert not any(r.found for r in found.values())
    for t, r in found.items():
        table = results_table(r)
        assert "nothing run" in table.caption
        assert any(r.file in n for n in table.notes)
        ours = [c for c, h in zip(table.rows[-1], table.header) if h.endswith(" ours")]
        assert ours and all(c == "not run" for c in ours)


def test_result_files_become_compare_table_rows(tmp_path):
    _write_train(tmp_path)
    _write_ablation(tmp_path)
    found = load_table_results(tmp_path)
    assert [t for t, r in found.items() if r.found] == [3, 6]

    counts = {"ssca": {"attention": 5, "total": 31_000_000}}
    t3 = results_table(found[3], table_parameters(3, counts))
    assert "SYNTHETIC" in t3.caption
    row = _rows(t3)["HandSSCA (paper)"]
    assert row[_col(t3, "PA-MPJPE (mm) ours")] == "12.00"
    assert row[_col(t3, "F@5 ours")] == "40.0%"  # the aligned F-score
    assert row[_col(t3, "PA-MPJPE AUC ours")] == "70.0%"
    assert row[_col(t3, "#Params ours")] == "31.0M"
    assert _rows(t3)["METRO [46]"][_col(t3, "PA-MPJPE (mm) ours")] == "not run"
    # both constants as rows of their own after the paper's, with no paper value
    pose = _rows(t3)["mean-pose constant (ours)"]
    art = _rows(t3)["mean-articulation constant (ours)"]
    assert pose[_col(t3, "PA-MPJPE (mm) ours")] == "20.00" and pose[_col(t3, "F@5 ours")] == "20.0%"
    assert art[_col(t3, "PA-MPJPE (mm) ours")] == "15.00"
    assert pose[_col(t3, "PA-MPJPE (mm) paper")] == "" and art[_col(t3, "#Params ours")] == ""
    assert any("mean-articulation constant" in n for n in t3.notes)
    assert any("CPU (test)" in n and "1 seed(s)" in n for n in t3.notes)

    r6 = found[6]
    assert r6.data == "real" and r6.seeds == [0, 1] and r6.split == "test"
    assert set(r6.ours) == {"none", "ssa", "ssca"} and r6.dropped_rows == ["extra"]
    t6 = results_table(r6)
    assert "real data" in t6.caption
    cell = _rows(t6)["Baseline+SSA"][_col(t6, "PA-MPJPE (mm) ours")]
    assert cell == f"11.50 ± {format_value(math.sqrt(0.5), 'mm')}"
    assert _rows(t6)["Baseline+Self-Attention"][_col(t6, "PA-MPJPE (mm) ours")] == "not run"
    assert any("extra" in n for n in t6.notes)
    assert not any("constant" in r[0] for r in t6.rows)  # the file holds none


def test_table_verdicts_judge_each_row_of_a_result_file(tmp_path):
    _write_train(tmp_path)  # HandSSCA 12.0 mm; constants 20.0 and 15.0 mm
    _write_ablation(tmp_path)  # no constants in this file
    write_result(tmp_path / "train-dexycb.json", kind="train/dexycb", data="real",
                 profile="paper", metrics={}, split="test")  # no ground truth: no metrics
    found = load_table_results(tmp_path)
    (v3,) = table_verdicts(found[3])
    assert v3.label == "Table 3, HandSSCA" and v3.status == "beats"
    assert v3.constant == "mean-articulation constant" and v3.ratio == pytest.approx(12 / 15)
    assert v3.text.startswith("SYNTHETIC data: ")
    v6 = table_verdicts(found[6])
    assert [v.label for v in v6] == ["Table 6, Baseline (FPN only)", "Table 6, Baseline+SSA",
                                     "Table 6, Baseline+SSCA"]
    assert {v.status for v in v6} == {"no_constant"}
    (v1,) = table_verdicts(found[1])
    assert v1.status == "not_run" and "train-freihand.json" in v1.label
    (v2,) = table_verdicts(found[2])
    assert v2.status == "no_ground_truth"


def test_malformed_or_misplaced_result_files_are_refused(tmp_path):
    write_result(tmp_path / "train-ho3d.json", kind="train/freihand", data="synthetic",
                 profile="quick", metrics={})
    with pytest.raises(ValueError, match="train-ho3d.json.*'train/ho3d'"):
        load_table_results(tmp_path)
    (tmp_path / "train-ho3d.json").unlink()
    write_result(tmp_path / "ablation-ho3d.json", kind="ablation/ho3d", data="synthetic",
                 profile="quick", metrics={"ssca": 1.0})
    with pytest.raises(ValueError, match="variant 'ssca'"):
        load_table_results(tmp_path)
    with pytest.raises(ValueError, match="is a file"):
        load_table_results(tmp_path / "ablation-ho3d.json")


def test_hardware_labels(tmp_path):
    assert hardware_label({"device": "NVIDIA H100 80GB HBM3", "cpu": "x"}) == (
        "NVIDIA H100 80GB HBM3")
    assert hardware_label({"gpu": "A100", "cuda": True}) == "A100"
    assert (hardware_label({"device": "cpu", "cpu": "AMD EPYC", "cpu_count": 2, "torch_threads": 1})
            == "CPU (AMD EPYC, 2 cores, 1 torch thread)")
    for i, threads in enumerate((1, 1, 2)):
        run = tmp_path / f"run{i}"
        run.mkdir()
        prov = {"device": "cpu", "cpu": "C", "cpu_count": 2, "torch_threads": threads}
        (run / "run.json").write_text(json.dumps({"provenance": prov}))
    assert runs_hardware(tmp_path / f"run{i}" for i in range(3)) == (
        "CPU (C, 2 cores, 1 torch thread); CPU (C, 2 cores, 2 torch threads)")
    with pytest.raises(ValueError, match="run.json"):
        runs_hardware([tmp_path])


def test_parameter_counts_on_meta_equal_the_built_networks():
    from handssca.models import parameter_table

    counts = parameter_counts(("none", "ssca"))  # on the meta device
    rows = {r["key"]: r["parameters"] for r in parameter_table(attention="ssca")}  # on the CPU
    assert counts["ssca"] == {"attention": rows["attention"], "total": rows["total"]}
    assert counts["none"]["attention"] == 0
    assert counts["none"]["total"] == rows["total"] - rows["attention"]
    assert table_parameters(1, counts) == {"HandSSCA (paper)": {"params": counts["ssca"]["total"]}}
    assert table_parameters(6, counts) == {"none": {"params": 0},
                                           "ssca": {"params": counts["ssca"]["attention"]}}
    assert table_parameters(4, counts) == {}
    # the paper's Table 6 rows that print a count
    printed = {r for r, c in paper_table(6).items() if "params" in c}
    assert printed == {"self_attention", "ssa", "ssca"}


def test_spread_table_means_spreads_and_both_constants():
    metrics = {"none": {"pa_mpjpe": [10.0, 12.0], "f5_aligned": [0.5, 0.7], "f5": [0.0, 0.0]},
               "ssca": {"pa_mpjpe": [9.0], "f5_aligned": [0.6]}}
    t = spread_table(metrics, ["pa_mpjpe", "f5"], data="synthetic",
                     constants={"mean_pose": {"pa_mpjpe": [20.0, 22.0], "f5_aligned": [0.1, 0.1]},
                                "mean_articulation": {"pa_mpjpe": [15.0, 15.0]}})
    assert "SYNTHETIC" in t.caption
    rows = _rows(t)
    assert rows["Baseline (FPN only)"][1:] == [
        "2", f"11.00 ± {format_value(math.sqrt(2), 'mm')}",
        f"60.0% ± {format_value(100 * math.sqrt(0.02), '%')}"]
    assert rows["Baseline+SSCA"][1:] == ["1", "9.00", "60.0%"]
    assert rows["mean-pose constant"][2] == f"21.00 ± {format_value(math.sqrt(2), 'mm')}"
    assert rows["mean-articulation constant"][2:] == ["15.00 ± 0.00", "not run"]
    assert [r[0] for r in t.rows][-2:] == ["mean-pose constant", "mean-articulation constant"]
    assert any("mean-articulation constant" in n for n in t.notes)
    # the first name of the mean-pose constant still works; no constant, no constant row
    old = spread_table(metrics, ["pa_mpjpe"], data="real", baseline={"pa_mpjpe": [20.0]})
    assert [r[0] for r in old.rows][-1] == "mean-pose constant"
    assert not any("constant" in r[0] for r in spread_table(metrics, ["pa_mpjpe"],
                                                            data="real").rows)
    with pytest.raises(ValueError, match="synthetic"):
        spread_table(metrics, ["pa_mpjpe"], data="n/a")
    with pytest.raises(ValueError, match="unknown keys"):
        spread_table(metrics, ["pa_mpjpe"], data="real", constants={"median": {}})


def test_seed_separation_sets_variant_differences_against_seed_spread():
    rng = np.random.default_rng(0)
    vals = {v: list(10.0 + i + rng.normal(0, 0.5, 3))
            for i, v in enumerate(("none", "ssa", "ssca"))}
    metrics = {v: {"pa_mpjpe": x, "f5_aligned": [0.5 + 0.1 * i] * 2}
               for i, (v, x) in enumerate(vals.items())}
    sep = seed_separation(metrics, "pa_mpjpe")
    means = {v: np.mean(x) for v, x in vals.items()}
    pooled = np.sqrt(np.mean([np.var(x, ddof=1) for x in vals.values()]))
    assert sep["best"] == min(means, key=means.get)
    assert sep["range"] == pytest.approx(max(means.values()) - min(means.values()))
    assert sep["pooled_std"] == pytest.approx(pooled)
    assert sep["ratio"] == pytest.approx(sep["range"] / pooled)
    f5 = seed_separation(metrics, "f5")  # higher is better, aligned F-score
    assert f5["best"] == "ssca" and f5["pooled_std"] == pytest.approx(0.0)
    assert f5["ratio"] == math.inf
    one = seed_separation({"none": {"pa_mpjpe": [1.0]}, "ssca": {"pa_mpjpe": [2.0]}}, "pa_mpjpe")
    assert one["pooled_std"] is None and one["ratio"] is None and one["range"] == 1.0
    with pytest.raises(ValueError, match="mpjpe"):
        seed_separation({"none": {"pa_mpvpe": [1.0]}}, "mpjpe")
