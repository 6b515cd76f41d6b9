"""The comparison tables fit the book's column: long format (one line per row and metric), the
#Params lines name the network they count, and the accuracy-vs-size plot's labels do not
overlap."""
import matplotlib

matplotlib.use("Agg")
from matplotlib.text import Text  # noqa: E402

from handssca.report import (load_table_results, printed_table, results_table,  # noqa: E402
                             table_parameters, write_result)
from handssca.viz.report import plot_accuracy_vs_size  # noqa: E402

COUNTS = {"ssca": {"attention": 578_304, "total": 30_864_852},
          "ssa": {"attention": 568_000, "total": 30_850_000},
          "none": {"attention": 0, "total": 30_286_548},
          "self_attention": {"attention": 1_051_904, "total": 31_300_000}}


def _write_train(folder, **extra):
    metrics = {"pa_mpjpe": 12.0, "pa_mpvpe": 13.0, "f5_aligned": 0.4, "f15_aligned": 0.8,
               "pa_mpjpe_auc": 0.7, "pa_mpvpe_auc": 0.6}
    return write_result(folder / "train-ho3d.json", kind="train/ho3d", data="synthetic",
                        profile="quick", metrics=metrics, seeds=[0],
                        baseline={"pa_mpjpe": 20.0}, hardware="CPU (test)", **extra)


def test_table_3_in_long_format_has_five_columns_and_names_both_networks(tmp_path):
    _write_train(tmp_path, params_trained=1_127_772)
    r = load_table_results(tmp_path)[3]
    assert r.params_trained == {"HandSSCA (paper)": 1_127_772}
    t = results_table(r, table_parameters(3, COUNTS), layout="long")
    assert t.header == ["row", "metric", "paper", "ours", "ours - paper"]
    lines = {(row[0], row[1]): row[2:] for row in t.rows}
    counted = lines[("HandSSCA (paper)", "#Params of the network, paper's configuration "
                                         "(counted)")]
    assert counted[1] == "30.9M"
    trained = lines[("HandSSCA (paper)", "#Params of the network trained here (quick "
                                         "profile)")]
    assert trained == ["", "1.13M", ""]
    assert lines[("HandSSCA (paper)", "PA-MPJPE (mm)")][1] == "12.00"
    assert ("mean-pose constant (ours)", "PA-MPJPE (mm)") in lines
    # the quoted methods are in the paper's table as printed, not in the long one
    assert not any(row[0].startswith("METRO") for row in t.rows)
    assert any(row[0].startswith("METRO") for row in printed_table(3).rows)
    assert len(printed_table(3).header) <= 8


def test_a_file_without_the_trained_count_says_not_recorded(tmp_path):
    _write_train(tmp_path)
    t = results_table(load_table_results(tmp_path)[3], table_parameters(3, COUNTS),
                      layout="long")
    trained = [row for row in t.rows if row[1].startswith("#Params of the network trained")]
    assert [row[3] for row in trained] == ["not recorded"]


def test_the_html_lets_headers_wrap_and_keeps_a_value_with_its_spread():
    t = results_table(load_table_results("/nonexistent-results-folder")[6],
                      table_parameters(6, COUNTS), layout="long")
    t.rows.append(["x", "y", "", "9.87 ± 0.12", ""])
    html = t._repr_html_()
    assert "nowrap" not in html
    assert "9.87\u00a0±\u00a00.12" in html


def test_the_accuracy_vs_size_labels_do_not_overlap(tmp_path):
    found = load_table_results(tmp_path)
    for table in (1, 2, 3):
        fig = plot_accuracy_vs_size(table, found[table], 30.9)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        # the text alone, not the leader line an annotation also draws
        boxes = [Text.get_window_extent(t, renderer) for t in ax.texts if t.get_text()]
        assert len(boxes) >= 5
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert not a.overlaps(b), (table, a, b)
        matplotlib.pyplot.close(fig)
