"""The training chapters' figures and tables (handssca.viz.training), on small synthetic inputs:
a made-up run log, made-up evaluation reports, and an untrained tiny network over made-up
samples (no training, no dataset on disk)."""
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from handssca.engine.runlog import RunLog  # noqa: E402
from handssca.report import paper_value  # noqa: E402
from handssca.viz import training as vt  # noqa: E402


def _records(epochs=4, lrs=(1e-3, 1e-3, 5e-4, 5e-4), val=True):
    rows = []
    for e in range(epochs):
        r = {"epoch": e + 1, "step": 10 * (e + 1), "lr": lrs[e], "loss": 100.0 / (e + 1),
             "loss_vertices": 40.0 / (e + 1), "loss_joints": 45.0 / (e + 1), "seconds": 1.5}
        if val:
            r["val_pa_mpjpe"] = 30.0 - e
        rows.append(r)
    return rows


def _report(data="synthetic", dataset="freihand", split="test", metrics=True):
    m = {"pa_mpjpe": 12.5, "pa_mpvpe": 11.0, "f5": 0.10, "f15": 0.40, "f5_aligned": 0.55,
         "f15_aligned": 0.95, "mpjpe": 40.0, "pa_mpjpe_auc": 0.75}
    base = {k: v * 2 for k, v in m.items()}
    art = {k: v * 1.5 for k, v in m.items()}
    return {"dataset": dataset, "split": split, "data": data, "n_samples": 7,
            "protocol": "FreiHAND eval.py", "metrics": m if metrics else None,
            "baseline": {"name": "mean-pose constant", "metrics": base if metrics else None},
            "baseline_mean_articulation": {"name": "mean-articulation constant",
                                           "metrics": art if metrics else None}}


def teardown_function():
    plt.close("all")


# ---------------------------------------------------------------------------- the run log
def test_run_log_plot_marks_lr_steps_and_labels_synthetic():
    log = RunLog(_records())
    assert vt.lr_steps(log) == [(3, 1e-3, 5e-4)]
    warm = RunLog(_records(lrs=(2e-5, 7e-4, 1e-3, 3e-4)))
    assert vt.lr_steps(warm) == [(4, 1e-3, 3e-4)]  # a warm-up's rises are not steps
    fig = vt.plot_run_log(log, data="synthetic")
    ax, ax2 = fig.axes  # loss and, on a twin axis, the validation error
    assert ax.get_title().startswith("SYNTHETIC data: ")
    assert ax.get_yscale() == "log"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [r["loss"] for r in _records()])
    np.testing.assert_allclose(ax2.lines[0].get_ydata(), [30, 29, 28, 27])
    assert "PA-MPJPE" in ax2.get_ylabel()
    steps = [t.get_text() for t in ax.texts if t.get_text().startswith("lr")]
    assert len(steps) == 1 and "0.0005" in steps[0]
    vlines = [ln for ln in ax.lines if np.allclose(ln.get_xdata(), 2.5)]
    assert len(vlines) == 1  # between epochs 2 and 3


def test_run_log_plot_draws_the_constants_on_the_validation_axis():
    # what mean_pose_baseline(run=..., split="val") returns: both constants on the held-out rows
    held_out = {"metrics": {"pa_mpjpe": 31.0}, "mean_articulation": {"pa_mpjpe": 24.5},
                "split": "val", "dataset": "freihand"}
    fig = vt.plot_run_log(RunLog(_records()), data="synthetic", constants=held_out)
    ax, ax2 = fig.axes
    flat = {ln.get_label(): ln.get_ydata()[0] for ln in ax2.lines[1:]}
    assert flat == {"mean-pose constant: 31.0 mm (same rows)": 31.0,
                    "mean-articulation constant: 24.5 mm (same rows)": 24.5}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("mean-articulation constant") for t in legend)
    plain = vt.plot_run_log(RunLog(_records()), constants={"a constant": 12.0})
    assert plain.axes[1].lines[1].get_ydata()[0] == 12.0
    assert vt.constant_values(None) == {}
    with pytest.raises(ValueError, match="no validation"):
        vt.plot_run_log(_records(val=False), constants=held_out)
    with pytest.raises(ValueError, match="expected a mapping"):
        vt.constant_values([31.0])


def test_run_log_plot_real_data_without_validation_and_terms():
    fig = vt.plot_run_log(_records(val=False), data="real", terms=True, title="a log")
    assert len(fig.axes) == 1
    assert fig.axes[0].get_title() == "a log"
    labels = [ln.get_label() for ln in fig.axes[0].lines]
    assert any("vertices" in lab for lab in labels) and any("joints" in lab for lab in labels)


@pytest.mark.parametrize("bad, message", [
    ([], "empty"),
    ([{"epoch": 1, "loss": 1.0}], "'lr'"),
    (42, "expected a RunLog"),
])
def test_run_log_plot_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        vt.plot_run_log(bad)


def test_run_log_plot_rejects_unknown_data_kind():
    with pytest.raises(ValueError, match="'synthetic', 'real'"):
        vt.plot_run_log(_records(), data="fake")


def test_log_table_caption_and_cells():
    t = vt.log_table(_records(), data="synthetic", title="FreiHAND run log")
    assert t.caption == "SYNTHETIC data: FreiHAND run log"
    assert t.header[:3] == ["epoch", "lr", "loss"] and "val_pa_mpjpe" in t.header
    assert len(t.rows) == 4 and t.rows[1][t.header.index("loss")] == "50"
    assert "SYNTHETIC" not in vt.log_table(_records(), data="real").caption
    with pytest.raises(ValueError, match="no column 'val_mpjpe'"):
        vt.log_table(_records(), columns=["epoch", "val_mpjpe"])


# ---------------------------------------------------------------------------- tables
def test_metrics_table_units_constants_and_synthetic_caption():
    t = vt.metrics_table(_report())
    assert "SYNTHETIC" in t.caption and "official test split" in t.caption
    assert "7 samples" in t.caption and "constants" in t.caption
    assert t.header == ["metric", "unit", "network", "mean-pose constant",
                        "mean-articulation constant"]
    first = [r[0] for r in t.rows[:4]]
    assert first == ["PA-MPJPE", "PA-MPVPE", "F@5 (aligned)", "F@15 (aligned)"]
    pa = t.rows[0]
    assert pa[1].startswith("mm") and pa[2:] == ["12.50", "25.00", "18.75"]
    f5 = t.rows[2]
    assert f5[1].startswith("%") and f5[2:] == ["55.0", "110.0", "82.5"]
    assert not any("baseline" in h.lower() for h in t.header)
    # an evaluation without the constants (--no-constants) shows the network alone
    alone = vt.metrics_table(dict(_report(), baseline=None, baseline_mean_articulation=None))
    assert alone.header == ["metric", "unit", "network"]
    assert len(t.rows) == len(_report()["metrics"])
    assert any("mm" in n and "%" in n for n in t.notes)
    real = vt.metrics_table(_report(data="real", split="val"), keys=["pa_mpjpe"])
    assert "SYNTHETIC" not in real.caption + " ".join(real.notes) and "split 'val'" in real.caption
    assert len(real.rows) == 1


@pytest.mark.parametrize("report, message", [
    (_report(metrics=False), "no metrics.*split 'val'"),
    ({"dataset": "ho3d", "metrics": {}}, r"lacks \['split', 'data'\]"),
    ([1, 2], "expected the dict"),
    (dict(_report(), data=None), "'synthetic' or 'real'"),
])
def test_metrics_table_rejects_bad_reports(report, message):
    with pytest.raises(ValueError, match=message):
        vt.metrics_table(report)


def test_metrics_table_rejects_unknown_key():
    with pytest.raises(ValueError, match="no metric 'rr_auc'"):
        vt.metrics_table(_report(), keys=["rr_auc"])


def test_paper_comparison_one_line_per_column():
    t = vt.paper_comparison(_report(), 1, profile="smoke", hardware="a CPU")
    assert t.header == ["metric", "paper", "ours", "ours - paper", "mean-pose constant",
                        "mean-articulation constant"]
    assert [r[0] for r in t.rows] == ["PA-MPJPE (mm)", "PA-MPVPE (mm)", "F@5", "F@15"]
    pa = t.rows[0]
    assert pa[1] == f"{paper_value(1, 'HandSSCA (paper)', 'pa_mpjpe'):.2f}" and pa[2] == "12.50"
    assert pa[4:] == ["25.00", "18.75"]  # the constants on our samples
    assert t.rows[2][4:] == ["110.0%", "82.5%"]
    assert t.rows[2][2] == "55.0%"  # the aligned F-score goes under the paper's F@5
    assert "SYNTHETIC" in t.caption and "official test split" in t.caption
    dex = vt.paper_comparison(_report(dataset="dexycb", data="real"), 2, profile="p", hardware="h")
    assert [r[0] for r in dex.rows] == ["MPJPE (mm)", "PA-MPJPE (mm)"]
    assert "SYNTHETIC" not in dex.caption
    with pytest.raises(ValueError, match="Table 1, 2 or 3"):
        vt.paper_comparison(_report(), 6, profile="p", hardware="h")
    with pytest.raises(ValueError, match="with metrics"):
        vt.paper_comparison(_report(metrics=False), 3, profile="p", hardware="h")


def test_data_notice():
    syn = vt.data_notice("synthetic", "ho3d", "/somewhere/ho3d-smoke-0").data
    assert "SYNTHETIC data" in syn and "HO-3D" in syn and "admonition important" in syn
    real = vt.data_notice("real", "dexycb").data
    assert "SYNTHETIC" not in real and "DexYCB" in real
    with pytest.raises(ValueError, match="'synthetic' or 'real'"):
        vt.data_notice(None, "ho3d")


# ---------------------------------------------------------------------------- predictions
@pytest.fixture(scope="module")
def tiny_run():
    """An untrained tiny network wrapped as a run of synthetic FreiHAND-style data."""
    from handssca.engine import Run
    from handssca.hand import load_hand_model
    from handssca.models import build_model

    torch.manual_seed(0)
    model = build_model(attention="ssca", input_size=128, C=16, hourglass_depth=1,
                        backbone={"kind": "light", "widths": [8, 8, 16, 16, 32]},
                        hand_model=load_hand_model()).eval()
    return Run(path="tiny", model=model, spec=model.config,
               checkpoint={"dataset": "freihand", "data": "synthetic", "profile": "smoke",
                           "seed": 0})


class _Samples:
    """A dataset-like object: ``get(i, augment=False)`` -> (sample, transform)."""

    def __init__(self, n=2, size=128, has_3d=(True, False)):
        g = torch.Generator().manual_seed(1)
        self.items = []
        for i in range(n):
            joints = torch.randn(21, 3, generator=g) * 0.03
            self.items.append({
                "image": torch.randn(3, size, size, generator=g),
                "joints2d": 0.3 + 0.4 * torch.rand(21, 2, generator=g),
                "joints3d": joints - joints[:1], "root": torch.tensor([0.0, 0.0, 0.6]),
                "K": torch.tensor([[250.0, 0, size / 2], [0, 250.0, size / 2], [0, 0, 1]]),
                "is_left": bool(i == 1), "has_3d": bool(has_3d[i % len(has_3d)]),
                "sample_id": f"seq/{i:04d}"})

    def __len__(self):
        return len(self.items)

    def get(self, i, augment=False):
        return self.items[i], SimpleNamespace(rotation=np.eye(3))


def test_show_predictions_gallery(tiny_run):
    fig = vt.show_predictions(tiny_run, _Samples(), n=5)  # at most the dataset's 2 samples
    axes = np.array(fig.axes).reshape(3, 2)  # ground truth, predicted 2D, predicted mesh
    assert fig._suptitle.get_text().startswith("SYNTHETIC data: FreiHAND")
    assert "PA-MPJPE" in axes[0, 0].get_title() and "PA-MPJPE" not in axes[0, 1].get_title()
    assert any("no ground truth" in t.get_text() for t in axes[0, 1].texts)
    assert "(left, mirrored)" in axes[0, 1].get_title()
    assert [a.get_ylabel() for a in axes[:, 0]] == ["ground truth 2D", "predicted 2D",
                                                    "predicted mesh"]
    img = axes[2, 0].images[0].get_array()
    assert img.shape == (128, 128, 3)
    assert len(axes[1, 0].collections) == 1  # the predicted joints: one scatter of 21 points
    assert axes[1, 0].collections[0].get_offsets().shape == (21, 2)


def test_show_predictions_without_mesh_picks_rows_and_labels_real(tiny_run):
    fig = vt.show_predictions(tiny_run, _Samples(), indices=[1], mesh=False, data="real",
                              title="picked")
    assert len(fig.axes) == 2 and fig._suptitle.get_text() == "picked"
    assert fig.axes[0].get_title().startswith("seq/0001")


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "n must be >= 1"),
    ({"indices": [5]}, r"indices must be in 0\.\.1"),
])
def test_show_predictions_rejects_bad_choice(tiny_run, kwargs, message):
    with pytest.raises(ValueError, match=message):
        vt.show_predictions(tiny_run, _Samples(), mesh=False, **kwargs)


def test_show_predictions_rejects_other_crop_size_and_non_datasets(tiny_run):
    with pytest.raises(ValueError, match="96 x 96 but the run was trained on 128 x 128"):
        vt.show_predictions(tiny_run, _Samples(size=96), n=1, mesh=False)
    with pytest.raises(ValueError, match="must be a handssca.data dataset"):
        vt.show_predictions(tiny_run, [1, 2, 3], n=1, mesh=False)
    with pytest.raises(ValueError, match="split must be 'test', 'val' or 'train'"):
        vt.split_dataset(tiny_run, "evaluation")
