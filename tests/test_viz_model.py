"""The figures and tables of the model chapters (handssca.viz.model)."""
import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from handssca.models import parameter_table  # noqa: E402
from handssca.ssm import SCAN_ORDERS  # noqa: E402
from handssca.viz.model import (parameter_view, plot_channel_select,  # noqa: E402
                                plot_scan_orders, top_channels)


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_scan_order_figure_numbers_each_pixel_by_its_step_and_no_labels_collide():
    h, w = 4, 6
    fig = plot_scan_orders(h, w, SCAN_ORDERS)
    try:
        axes = fig.axes
        assert len(axes) == 4
        # the step at which order k visits pixel (r, c), as the panels write it
        expected = {
            0: lambda r, c: r * w + c,
            1: lambda r, c: c * h + r,
            2: lambda r, c: h * w - 1 - (r * w + c),
            3: lambda r, c: h * w - 1 - (c * h + r),
        }
        for k, ax in enumerate(axes):
            texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
                     for t in ax.texts}
            assert len(texts) == h * w
            for (r, c), text in texts.items():
                assert int(text) == expected[k](r, c), (k, r, c)
            assert SCAN_ORDERS[k] in ax.get_title()
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        titles = [ax.title.get_window_extent(renderer) for ax in axes]
        panels = [ax.get_window_extent(renderer) for ax in axes]
        for a, b in itertools.combinations(titles + panels, 2):
            assert not _overlaps(a, b), "a title overlaps another title or panel"
        for ax in axes:
            boxes = [t.get_window_extent(renderer) for t in ax.texts]
            for a, b in itertools.combinations(boxes, 2):
                assert not _overlaps(a, b), "two step numbers overlap"
        assert not fig.texts, "titles belong in the caption, not in a suptitle"
    finally:
        plt.close(fig)


def test_top_channels_are_the_largest_mean_delta_first():
    plane = np.zeros((6, 3))
    plane[4] = 3.0
    plane[1] = 2.0
    plane[5, 0] = 1.5  # mean 0.5
    assert top_channels(plane, 3).tolist() == [4, 1, 5]
    with pytest.raises(ValueError, match=r"\(C, H\) plane"):
        top_channels(plane, 7)
    with pytest.raises(ValueError, match=r"\(C, H\) plane"):
        top_channels(plane[0], 1)


def test_channel_select_figure_marks_the_most_selected_channels():
    rng = np.random.default_rng(0)
    c, h = 64, 8
    delta = rng.uniform(0.01, 0.02, (c, h))
    delta[[3, 40, 17]] += 0.05
    fig = plot_channel_select(np.zeros((64, 64, 3), np.uint8), rng.normal(size=(c, h)),
                              delta, rng.normal(size=(c, h)), column=2, n_top=3)
    try:
        planes = [ax for ax in fig.axes if ax.images and ax.get_ylabel() == "row h"]
        assert len(planes) == 2
        for ax in planes:
            assert sorted(ax.get_xticks().tolist()) == [3, 17, 40]
            assert ax.images[0].get_array().shape == (h, c)  # rows x channels
    finally:
        plt.close(fig)


def test_parameter_view_is_a_table_with_shares_and_the_papers_figures():
    rows = parameter_table(attention="ssca", input_size=256)
    table = parameter_view(rows, caption="HandSSCA")
    assert table.header == ["part", "parameters", "share", "paper"]
    assert len(table.rows) == len(rows)
    total = table.rows[-1]
    assert total[0] == "total" and total[1] == "30,864,852" and total[2] == "100.0%"
    assert total[3] == "31.8M"
    branch = [r for r in table.rows if "channel branch" in r[0]]
    assert branch and branch[0][0].startswith("\u2003")  # a branch is indented
    assert "<table" in table._repr_html_()
