"""The chapters' conclusions, decided by two functions: a network against the best constant
(handssca.report.verdict) and the rule for differences between variants
(handssca.report.separation: a gap must exceed twice the pooled seed sd)."""
import math

import pytest

from handssca.report import (Verdict, constants_of, metric_separation, pooled_std, separation,
                             variant_verdicts, verdict, verdict_lines)


def _report(net=9.1, pose=20.0, art=12.2, data="synthetic", split="test", metrics=True):
    """The shape of evaluate()'s metrics.json, numbers made up."""
    return {"dataset": "ho3d", "split": split, "data": data,
            "metrics": {"pa_mpjpe": net, "f5_aligned": 0.4} if metrics else None,
            "baseline": {"name": "mean-pose constant",
                         "metrics": {"pa_mpjpe": pose, "f5_aligned": 0.1} if metrics else None},
            "baseline_mean_articulation": {"name": "mean-articulation constant",
                                           "metrics": {"pa_mpjpe": art, "f5_aligned": 0.3}
                                           if metrics else None}}


# ---------------------------------------------------------------------------- verdict
def test_a_network_below_the_best_constant_beats_it():
    v = verdict(_report(), label="SSCA network")
    assert isinstance(v, Verdict) and v.status == "beats" and v.beats
    assert v.constant == "mean-articulation constant"  # the lower PA-MPJPE of the two
    assert v.constant_value == 12.2 and v.ratio == pytest.approx(9.1 / 12.2)
    assert v.constants == {"mean-pose constant": 20.0, "mean-articulation constant": 12.2}
    assert v.text == ("SYNTHETIC data: SSCA network 9.10 mm PA-MPJPE (split 'test') vs best "
                      "constant (mean-articulation) 12.20 mm: 0.75x: beats the constant")
    assert v.markdown().endswith("**beats the constant**")
    assert v._repr_markdown_() == v.markdown()


def test_a_network_at_or_above_the_best_constant_does_not_beat_it():
    v = verdict(_report(net=12.2, data="real"))
    assert v.status == "does_not_beat" and not v.beats
    assert v.ratio == pytest.approx(1.0)
    assert v.text.endswith("1.00x: does not beat the constant")
    assert "SYNTHETIC" not in v.text
    # the mean pose is the best constant when it is the lower one
    w = verdict(_report(net=25.0, pose=14.0, art=18.0))
    assert w.constant == "mean-pose constant" and w.status == "does_not_beat"


def test_every_case_without_a_comparison_is_named():
    gone = verdict(None, label="SSCA network", data="synthetic")
    assert gone.status == "not_run" and "not run" in gone.text and "no verdict" in gone.text
    blind = verdict(_report(metrics=False, split="test"), label="SSCA network")
    assert blind.status == "no_ground_truth"
    assert "no ground truth" in blind.text and "split 'test'" in blind.text
    alone = verdict(dict(_report(), baseline=None, baseline_mean_articulation=None))
    assert alone.status == "no_constant" and "no constant was scored" in alone.text
    assert alone.value == 9.1 and alone.ratio is None


def test_seeds_must_all_beat_the_constant():
    consts = {"mean_pose": {"pa_mpjpe": [20.0, 21.0]},
              "mean_articulation": {"pa_mpjpe": [12.0, 13.0]}}
    both = verdict({"pa_mpjpe": [10.0, 12.0]}, consts, label="FPN + SSCA")
    assert both.status == "beats" and both.below == 2 and both.text.endswith("(all 2 seeds)")
    # the mean (11.75) is below the constant's (12.5), but seed 1 (13.5) is not below its own
    # constant (13.0): each seed meets the constant of its own training rows
    mixed = verdict({"pa_mpjpe": [10.0, 13.5]}, consts)
    assert mixed.status == "mixed" and mixed.below == 1 and not mixed.beats
    assert "on average only (1 of 2 seeds)" in mixed.text
    worse = verdict({"pa_mpjpe": [11.0, 16.0]}, consts)
    assert worse.status == "does_not_beat"
    assert worse.text.endswith("does not beat the constant (1 of 2 seeds below it)")
    assert "mean of 2 seeds" in worse.text
    # one constant value for several seeds: every seed against it
    single = verdict({"pa_mpjpe": [9.0, 10.8]}, {"mean_articulation": {"pa_mpjpe": 10.5}})
    assert single.status == "mixed" and single.below == 1


def test_a_network_within_the_margin_of_the_constant_is_not_credited():
    from handssca.report.verdict import MARGIN

    const = {"mean_articulation": {"pa_mpjpe": 13.70}}
    par = verdict({"pa_mpjpe": 13.65}, const, label="SSCA network")
    assert par.status == "par" and not par.beats and par.below == 0
    assert par.text.endswith(f"no better than the constant (within {MARGIN:.0%}; learnt no more "
                             f"than a constant hand)")
    edge = verdict({"pa_mpjpe": 13.70 * (1 - MARGIN) - 1e-6}, const)
    assert edge.status == "beats"
    assert verdict({"pa_mpjpe": 13.71}, const).status == "does_not_beat"
    # two seeds just below the constant: on a par, not "mixed"
    assert verdict({"pa_mpjpe": [13.5, 13.6]}, const).status == "par"


def test_higher_is_better_for_f_scores():
    v = verdict(_report(), metric="f5")  # reads the aligned F-score
    assert v.unit == "%" and v.constant == "mean-articulation constant"  # the higher F@5
    assert v.status == "beats" and v.ratio == pytest.approx(0.4 / 0.3)
    assert "40.0%" in v.text and "30.0%" in v.text


def test_constants_are_read_from_every_producer():
    rep = _report()
    assert constants_of(rep)["mean_articulation"] == {"pa_mpjpe": 12.2, "f5_aligned": 0.3}
    # a result file holds the metrics directly under the same keys
    filed = {"baseline": {"pa_mpjpe": [20.0]}, "baseline_mean_articulation": {"pa_mpjpe": [12.0]}}
    assert constants_of(filed) == {"mean_pose": {"pa_mpjpe": [20.0]},
                                   "mean_articulation": {"pa_mpjpe": [12.0]}}
    # mean_pose_baseline's result
    alone = {"metrics": {"pa_mpjpe": 20.0}, "mean_articulation": {"pa_mpjpe": 12.0},
             "split": "val"}
    assert constants_of(alone)["mean_pose"] == {"pa_mpjpe": 20.0}
    assert verdict({"pa_mpjpe": 11.0}, alone).constant_value == 12.0
    assert constants_of({"baseline": None}) == {"mean_pose": None, "mean_articulation": None}


def test_bad_input_is_refused_with_what_was_expected():
    with pytest.raises(ValueError, match="'synthetic', 'real' or None"):
        verdict(_report(), data="fake")
    with pytest.raises(ValueError, match="metrics mapping or None"):
        verdict([9.1])
    with pytest.raises(ValueError, match="no value of 'mpjpe'"):
        verdict({"pa_mpjpe": 9.1}, metric="mpjpe")
    with pytest.raises(ValueError, match="constants must be a mapping"):
        verdict({"pa_mpjpe": 9.1}, [12.0])
    with pytest.raises(ValueError, match="expected an evaluation report"):
        constants_of(None)


def test_verdict_lines_one_per_network():
    lines = verdict_lines([verdict(_report(), label="a"), verdict(None, label="b")])
    assert lines.count("\n") == 1 and lines.startswith("- ") and "**beats the constant**" in lines


# ---------------------------------------------------------------------------- separation
def test_pooled_std_weights_each_variant_by_its_degrees_of_freedom():
    assert pooled_std([[1.0, 3.0], [5.0, 5.0, 5.0]]) == pytest.approx(math.sqrt(2.0 / 3.0))
    assert pooled_std([[1.0], [2.0]]) is None
    assert pooled_std([[2.0, 2.0], [7.0]]) == 0.0


def test_a_gap_beyond_twice_the_pooled_seed_sd_names_a_winner():
    s = separation({"none": [10.0, 10.2], "ssca": [9.0, 9.2]}, name="PA-MPJPE", unit="mm")
    assert s.pooled_std == pytest.approx(math.sqrt(0.02)) and s.threshold == pytest.approx(
        2 * math.sqrt(0.02))
    assert s.winner == "ssca" and s.leader == "ssca" and s.gap == pytest.approx(1.0)
    assert s.detectable == [("ssca", "none", pytest.approx(1.0))]
    assert s.text.startswith("PA-MPJPE: Baseline+SSCA has the lowest value, 1.00 mm ahead of the "
                             "next (Baseline (FPN only))")
    assert "2 seeds per variant" in s.text


def test_a_gap_within_twice_the_pooled_seed_sd_is_no_detectable_difference():
    s = separation({"none": [10.0, 11.0], "ssca": [9.8, 10.6]}, name="PA-MPJPE", unit="mm")
    assert s.winner is None and s.detectable == []
    assert s.leader == "ssca"  # lower mean, but not a winner
    assert s.text.startswith("PA-MPJPE: no detectable difference between the variants")
    assert "best" not in s.text and "winner" not in s.text


def test_one_seed_per_variant_can_never_name_a_winner():
    s = separation({"none": 10.0, "ssca": [5.0]}, name="r50", unit="px", higher=True,
                   labels={"none": "FPN", "ssca": "FPN + SSCA"})
    assert s.pooled_std is None and s.threshold is None and s.winner is None
    assert s.leader == "none"  # higher leads
    assert "one seed per variant" in s.text and "FPN + SSCA 5.00 px" in s.text


def test_a_detectable_pair_without_a_single_winner():
    s = separation({"a": [1.0, 1.1], "b": [1.05, 1.15], "c": [3.0, 3.1]}, name="contrast",
                   higher=True)
    assert s.order == ["c", "b", "a"] and s.winner == "c"
    s2 = separation({"a": [1.0, 1.1], "b": [1.05, 1.15], "c": [3.0, 3.1]}, name="contrast",
                    higher=False)
    assert s2.winner is None and {(a, b) for a, b, _ in s2.detectable} == {("a", "c"), ("b", "c")}
    assert "no single variant stands out" in s2.text and "detectable: a below c" in s2.text


def test_metric_separation_reads_the_papers_columns():
    metrics = {"none": {"f5_aligned": [0.50, 0.52], "pa_mpjpe": [10.0, 10.1]},
               "ssca": {"f5_aligned": [0.60, 0.62], "pa_mpjpe": [10.05, 10.0]}}
    f5 = metric_separation(metrics, "f5")
    assert f5.unit == "%" and f5.higher and f5.means["ssca"] == pytest.approx(61.0)
    assert f5.winner == "ssca" and f5.text.startswith("F@5: ")
    pa = metric_separation(metrics, "pa_mpjpe")
    assert pa.winner is None and pa.name == "PA-MPJPE"


def test_separation_refuses_what_it_cannot_compare():
    with pytest.raises(ValueError, match="at least two variants"):
        separation({"ssca": [1.0, 2.0], "none": [float("nan")]}, name="x")
    with pytest.raises(ValueError, match="factor must be positive"):
        separation({"a": [1.0], "b": [2.0]}, name="x", factor=0)


def test_one_verdict_per_variant_of_an_ablation():
    pose = {"pa_mpjpe": [20.0, 20.0]}
    art = {"pa_mpjpe": [12.0, 13.0]}
    ev = {"data": "synthetic", "split": "test",
          "metrics": {"none": {"pa_mpjpe": [14.0, 15.0]}, "ssca": {"pa_mpjpe": [11.0, 12.0]}},
          "baseline": {"none": pose, "ssca": pose},
          "baseline_mean_articulation": {"none": art, "ssca": art},
          "reports": {("none", 0): {}, ("none", 1): {}, ("ssca", 0): {}, ("ssca", 1): {}}}
    none, ssca = variant_verdicts(ev)
    assert none.label == "Baseline (FPN only)" and none.status == "does_not_beat"
    assert ssca.status == "beats" and ssca.constant == "mean-articulation constant"
    assert ssca.text.startswith("SYNTHETIC data: Baseline+SSCA 11.50 mm PA-MPJPE, mean of 2 seeds")
    # a split without ground truth: evaluate_variants has no metrics, the reports say why
    blind = dict(ev, metrics={}, reports={("ssca", 0): {"metrics": None, "split": "test",
                                                        "data": "real"}})
    (only,) = variant_verdicts(blind, labels={"ssca": "SSCA"})
    assert only.status == "no_ground_truth" and only.label == "SSCA"
    with pytest.raises(ValueError, match="evaluate_variants"):
        variant_verdicts({"metrics": {}})
