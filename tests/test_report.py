"""Paper numbers (one data file, complete and well-formed) and the paper | ours | difference table."""
import json

import pytest

from handssca.report import compare_table, load_result, paper_numbers, paper_table, write_result
from handssca.report.paper import table_columns

# rows x metric columns of each of the paper's tables, as printed
SHAPES = {1: (8, 5), 2: (6, 3), 3: (9, 7), 4: (3, 4), 5: (3, 2), 6: (4, 5)}


@pytest.mark.parametrize("table", range(1, 7))
def test_every_table_is_complete(table):
    t = paper_table(table)
    rows, cols = SHAPES[table]
    assert len(t) == rows
    assert len(table_columns(table)) == cols
    for cells in t.values():
        for n in cells.values():
            assert n.unit in ("mm", "%", "M")
            assert n.value is None or n.value > 0
            if n.value is None:
                assert n.note == "not reported"


def test_handssca_rows_agree_across_tables():
    # the paper's own numbers repeat between the comparison and ablation tables
    for main, abl, cols in ((1, 4, ["pa_mpjpe", "pa_mpvpe", "f5", "f15"]), (2, 5, ["mpjpe", "pa_mpjpe"]),
                            (3, 6, ["pa_mpjpe", "pa_mpvpe", "f5", "f15"])):
        for c in cols:
            assert paper_table(main)["HandSSCA (paper)"][c].value == paper_table(abl)["ssca"][c].value


def test_compare_table_marks_missing_runs_and_converts_units():
    t = compare_table(6, {"ssca": {"pa_mpjpe": [9.0, 11.0], "f5": 0.5}}, data="synthetic",
                      profile="quick", hardware="CPU")
    header, rows = t.header, {r[0]: r for r in t.rows}
    i = header.index("PA-MPJPE (mm) ours")
    assert rows["Baseline+SSCA"][i - 1] == "9.50"            # paper
    assert rows["Baseline+SSCA"][i].startswith("10.00 ± 1.41")  # mean ± std of two seeds
    assert rows["Baseline+SSCA"][i + 1] == "+0.50"           # ours - paper
    j = header.index("F@5 ours")
    assert rows["Baseline+SSCA"][j] == "50.0%" and rows["Baseline+SSCA"][j + 1] == "-1.8 pt"
    assert rows["Baseline (FPN only)"][i] == "not run"
    assert any("SYNTHETIC" in n for n in t.notes)
    assert "9.50" in t._repr_html_() and "not run" in t.to_markdown()


def test_compare_table_rejects_unknown_rows_and_data_kinds():
    with pytest.raises(ValueError, match="no rows"):
        compare_table(5, {"ssa": {"mpjpe": 1.0}}, data="real", profile="paper", hardware="GPU")
    with pytest.raises(ValueError, match="synthetic"):
        compare_table(5, {}, data="fake", profile="paper", hardware="GPU")


def test_result_files_carry_provenance(tmp_path):
    p = write_result(tmp_path / "r.json", kind="ablation/ho3d", data="synthetic", profile="smoke",
                     metrics={"pa_mpjpe": [1.0]}, seeds=[0])
    r = load_result(p)
    assert r["provenance"]["commit"] and r["seeds"] == [0]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "x", "data": "synthetic"}))
    with pytest.raises(ValueError, match="profile"):
        load_result(bad)


def test_paper_numbers_count():
    assert len(paper_numbers()) == sum(r * c for r, c in SHAPES.values()) - 1  # Table 6: the baseline has no #Params
