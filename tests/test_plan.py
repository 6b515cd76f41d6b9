"""The plan of a profile (``python -m handssca plan``): its arithmetic, that it reads the profile
and the chapters, and the book's confirmation before a paper build (through functions: no
timing)."""
import argparse
import io
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from handssca.__main__ import main
from handssca.data.registry import SPLIT_SIZES, split_size
from handssca.engine import plan as P
from handssca.engine.ablation import TABLE_VARIANTS
from handssca.engine.profiles import PROFILE_DIR, resolve_profile, training_config

ROOT = Path(__file__).resolve().parents[1]


def _row(**kw):
    base = dict(chapter="05_x", dataset="ho3d", variants=["ssca"], seeds=[0], input_size=256,
                images_per_epoch=1000, epochs=10, runs=3, new_runs=2, eval_images_per_run=100)
    base.update(kw)
    return P.Row(**base)


def _plan(hours):
    """A plan whose total takes ``hours`` (one row, one image per second)."""
    images = int(round(hours * 3600))
    tp = P.Throughput({256: 1.0}, {256: 1e12}, "given", ["test"])
    plan = P.cost([_row(images_per_epoch=images, epochs=1, runs=1, new_runs=1,
                        eval_images_per_run=0)], tp)
    plan.update(profile="paper", description="test")
    return plan


# ------------------------------------------------------------------------------ arithmetic
def test_cost_is_images_times_epochs_times_new_runs_over_throughput():
    tp = P.Throughput({256: 50.0}, {256: 200.0}, "given", [])
    plan = P.cost([_row()], tp, gpus=4, efficiency=0.5)
    r = plan["rows"][0]
    assert r["train_images"] == 1000 * 10 * 2  # reused runs are not trained again
    assert r["eval_images"] == 100 * 3  # every run the chapter asks for is evaluated
    expected = (20000 / (50.0 * 4 * 0.5) + 300 / (200.0 * 4 * 0.5)) / 3600
    assert r["hours"] == pytest.approx(expected)
    assert plan["total"]["hours"] == pytest.approx(expected)
    assert plan["total"]["runs"] == 2
    # a single run does not spread over GPUs: its hours on one GPU (at the efficiency)
    assert plan["total"]["longest_run_hours"] == pytest.approx(10000 / (50.0 * 0.5) / 3600)


def test_eight_gpus_divide_the_hours_by_eight_at_linear_scaling():
    rows = P.plan_rows("paper")
    sizes = sorted({r.input_size for r in rows})
    one = P.cost(P.plan_rows("paper"), P.given_throughput(500, sizes), gpus=1)
    eight = P.cost(rows, P.given_throughput(500, sizes), gpus=8)
    assert eight["total"]["hours"] == pytest.approx(one["total"]["hours"] / 8)
    assert one["total"]["train_images"] == eight["total"]["train_images"]


def test_bad_gpus_efficiency_and_missing_crop_size_are_refused():
    tp = P.Throughput({256: 1.0}, {256: 1.0}, "given", [])
    with pytest.raises(ValueError, match="--gpus"):
        P.cost([_row()], tp, gpus=0)
    with pytest.raises(ValueError, match="scaling-efficiency"):
        P.cost([_row()], tp, efficiency=1.5)
    with pytest.raises(ValueError, match="224 x 224"):
        P.cost([_row(input_size=224)], tp)
    with pytest.raises(ValueError, match="images-per-second"):
        P.given_throughput(0, [256])


def test_given_throughput_states_the_evaluation_assumption():
    tp = P.given_throughput(400, [224, 256])
    assert tp.train == {224: 400.0, 256: 400.0}
    assert tp.eval[256] == P.EVAL_SPEEDUP_ASSUMED * 400
    assert any("assumed" in line for line in tp.how)
    assert P.given_throughput(400, [256], 900).eval == {256: 900.0}


# ------------------------------------------------------------------------------ the sources
def test_rows_come_from_the_profile_the_notebooks_and_the_registry():
    prof = resolve_profile("paper")
    rows = P.plan_rows(prof)
    by = {(r.chapter, r.dataset): r for r in rows}
    seeds = prof.section("chapters", "ablation")["seeds"]
    for chapter, dataset in (("05_train_freihand", "freihand"), ("06_train_dexycb", "dexycb"),
                             ("07_train_ho3d", "ho3d")):
        r = by[(chapter, dataset)]
        assert r.epochs == training_config(prof, dataset)["epochs"]
        assert r.input_size == training_config(prof, dataset)["input_size"]
        assert r.images_per_epoch == split_size(dataset, "train")
        assert (r.runs, r.new_runs) == (1, 1)
    abl = by[("08_ablations", "ho3d")]
    assert abl.runs == len(TABLE_VARIANTS[6]) * len(seeds)
    assert abl.new_runs == abl.runs - 1  # chapter 07's (ssca, seed 0) run is reused
    assert by[("10_receptive_fields", "ho3d")].new_runs == 0  # the ablation's networks
    assert by[("11_attention_maps", "ho3d")].new_runs == 0
    unique = {(r.dataset, v, s) for r in rows for v in r.variants for s in r.seeds}
    assert sum(r.new_runs for r in rows) == len(unique)


def test_changing_a_profiles_epochs_changes_the_plan(tmp_path):
    data = yaml.safe_load((PROFILE_DIR / "paper.yaml").read_text())
    data["train"]["ho3d"]["epochs"] = 40  # half the paper's 80
    path = tmp_path / "half.yaml"
    path.write_text(yaml.safe_dump(data))
    sizes = [224, 256]
    base = P.cost(P.plan_rows("paper"), P.given_throughput(500, sizes))
    half = P.cost(P.plan_rows(str(path)), P.given_throughput(500, sizes))
    rows = {(r["chapter"], r["dataset"]): r for r in half["rows"]}
    assert rows[("07_train_ho3d", "ho3d")]["epochs"] == 40
    old = {(r["chapter"], r["dataset"]): r for r in base["rows"]}
    assert (rows[("08_ablations", "ho3d")]["train_images"]
            == old[("08_ablations", "ho3d")]["train_images"] // 2)
    assert half["total"]["hours"] < base["total"]["hours"]


def test_the_ablation_seeds_of_the_profile_set_the_runs(tmp_path):
    data = yaml.safe_load((PROFILE_DIR / "paper.yaml").read_text())
    data["chapters"]["ablation"]["seeds"] = [0]
    path = tmp_path / "one-seed.yaml"
    path.write_text(yaml.safe_dump(data))
    rows = {(r.chapter, r.dataset): r for r in P.plan_rows(str(path))}
    assert rows[("08_ablations", "freihand")].runs == len(TABLE_VARIANTS[4])


def test_notebook_literals_read_the_chapters_own_assignments():
    lit = P.notebook_literals(ROOT / "notebooks" / "07_train_ho3d.ipynb")
    assert lit["attention"] == "ssca" and lit["seed"] == 0
    with pytest.raises(FileNotFoundError, match="notebooks"):
        P.notebook_literals(ROOT / "notebooks" / "99_none.ipynb")


def test_the_book_chapters_option_limits_the_plan():
    rows = P.plan_rows("paper", chapters=["10"])
    assert [r.chapter for r in rows] == ["10_receptive_fields"]
    assert rows[0].new_runs == rows[0].runs  # no earlier chapter in this selection
    plan = P.make_plan("paper", chapters=["01"])  # no training chapter: nothing measured
    assert plan["total"]["hours"] == 0 and not P.needs_confirmation(plan)


def test_registry_split_sizes_are_cited_and_checked():
    assert split_size("freihand", "train") == 32560 * 4
    assert split_size("ho3d", "test") == 11524
    assert all(v["source"] for v in SPLIT_SIZES.values())
    with pytest.raises(ValueError, match="split_size"):
        split_size("coco", "train")


def test_measured_throughput_says_how_it_was_measured():
    rows = P.plan_rows("smoke")[:1]
    tp = P.measured_throughput("smoke", rows, device="cpu", batch=2, steps=1, warmup=1)
    size = rows[0].input_size
    assert tp.source == "measured" and tp.train[size] > 0 and tp.eval[size] > 0
    assert any("batch 2" in h and "1 warm-up" in h for h in tp.how)


# ------------------------------------------------------------------------------ output
def test_render_lines_fit_the_books_column_and_json_round_trips(capsys):
    text = P.render(P.make_plan("paper", 500, gpus=8))
    assert max(len(line) for line in text.splitlines()) <= 79
    assert "8 GPUs" in text and "assumed" in text
    assert main(["plan", "--profile", "paper", "--images-per-second", "500", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["profile"] == "paper" and plan["throughput"]["source"] == "given"
    assert plan["total"]["train_images"] == sum(r["train_images"] for r in plan["rows"])


def test_page_plans_are_written_for_one_and_eight_gpus(tmp_path):
    paths = P.write_page_plans(tmp_path)
    assert [p.name for p in paths] == ["plan-paper-1gpu.txt", "plan-paper-8gpu.txt"]
    assert "on 8 GPUs" in paths[1].read_text()
    assert f"{P.ASSUMED_IMAGES_PER_SECOND:g} images/s" in paths[0].read_text()
    page = (ROOT / "book" / "how_to_run.md").read_text()
    assert all(f"{{literalinclude}} {p.name}" in page for p in paths)


# ------------------------------------------------------------------------------ confirmation
def _never(prompt):
    raise AssertionError("asked")


def test_under_an_hour_goes_ahead_without_asking():
    go, why = P.confirm(_plan(0.5), yes=False, interactive=False, ask=_never, out=lambda t: None)
    assert go and why is None


def test_over_an_hour_without_a_terminal_refuses_naming_the_flag():
    go, why = P.confirm(_plan(2.0), yes=False, interactive=False, ask=_never, out=lambda t: None)
    assert not go and "--yes" in why and "YES=1" in why and "\n" not in why


def test_the_flag_skips_the_question():
    go, _ = P.confirm(_plan(200.0), yes=True, interactive=False, ask=_never, out=lambda t: None)
    assert go


@pytest.mark.parametrize("answer, expected", [("y", True), ("yes", True), ("n", False),
                                              ("", False)])
def test_over_an_hour_at_a_terminal_asks(answer, expected):
    printed = []
    go, _ = P.confirm(_plan(2.0), yes=False, interactive=True, ask=lambda p: answer,
                      out=printed.append)
    assert go is expected and "Plan of the paper profile" in printed[0]


def test_end_of_input_at_the_question_is_a_no():
    def eof(prompt):
        raise EOFError

    go, _ = P.confirm(_plan(2.0), yes=False, interactive=True, ask=eof, out=lambda t: None)
    assert not go


def test_smoke_and_quick_books_print_no_plan_and_ask_nothing():
    printed = []
    for profile in ("smoke", "quick"):
        assert P.confirm_book(profile, yes=False, out=printed.append)
    assert printed == []


def _book_args(**kw):
    from handssca import book

    parser = argparse.ArgumentParser()
    book.add_arguments(parser)
    return parser.parse_args(kw.pop("argv"))


def test_paper_book_without_terminal_or_flag_refuses_before_building(monkeypatch, capsys):
    from handssca import book

    monkeypatch.setattr(P, "make_plan", lambda profile, chapters=None: _plan(5.0))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    monkeypatch.setattr(book, "build", lambda *a, **k: pytest.fail("built"))
    assert book.run(_book_args(argv=["--profile", "paper"])) == 2
    err = capsys.readouterr().err
    assert "--yes" in err and len(err.strip().splitlines()) == 1


def test_paper_book_with_the_flag_builds(monkeypatch):
    from handssca import book

    built = []
    monkeypatch.setattr(P, "make_plan", lambda profile, chapters=None: _plan(5.0))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setattr(book, "build", lambda *a, **k: built.append(a))
    assert book.run(_book_args(argv=["--profile", "paper", "--yes"])) == 0
    assert built and built[0][0] == "paper"


def _make_book(*variables):
    out = subprocess.run(["make", "-n", "book", "STAMP=pyproject.toml", *variables], cwd=ROOT,
                         capture_output=True, text=True).stdout
    return [x.rstrip() for x in out.splitlines() if "handssca book" in x]


def test_make_passes_yes_to_the_book_only_when_asked():
    assert _make_book("PROFILE=paper", "YES=1")[0].endswith("--profile paper --yes")
    assert _make_book("PROFILE=paper")[0].endswith("--profile paper")


def test_a_bad_option_is_one_line_naming_it(capsys):
    assert main(["plan", "--gpus", "0", "--images-per-second", "500"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--gpus" in err[0]
