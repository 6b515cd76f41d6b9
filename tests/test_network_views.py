"""Shape tracing through the network (Fig. 2) and the stand-alone mesh views used by the book."""
import numpy as np
import pytest
import torch

from handssca.hand import HandLayer, load_hand_model
from handssca.models import build_model, trace_shapes
from handssca.viz.mesh import VIEWS, mesh_view


def test_trace_follows_the_data_through_every_stage():
    model = build_model(attention="ssa", input_size=128).eval()
    rows = trace_shapes(model, torch.zeros(1, 3, 128, 128))
    order = [r["module"] for r in rows]
    # stages appear in the order the data flows, each once per output
    firsts = list(dict.fromkeys(order))
    assert firsts == ["backbone.resnet.layer1", "backbone.resnet.layer2", "backbone.resnet.layer3",
                      "backbone.resnet.layer4", "backbone", "attention", "heatmap_head", "encoder",
                      "mano_head", "hand_layer"]
    shapes = {(r["module"], r["output"]): r["shape"] for r in rows}
    assert shapes[("backbone", "")] == (1, 256, 16, 16)
    assert shapes[("hand_layer", "joints")] == (1, 21, 3)
    # hooks are removed afterwards
    assert all(not m._forward_hooks for m in model.modules())


def test_mesh_view_frames_the_hand_and_views_differ():
    hand = load_hand_model()
    v = HandLayer(hand)(torch.zeros(1, 48), torch.zeros(1, 10))["vertices"][0].numpy()
    imgs = {k: mesh_view(v, hand.faces, size=96, view=k) for k in VIEWS}
    for k, im in imgs.items():
        assert im.shape == (96, 96, 3) and im.dtype == np.uint8
        covered = (im < 250).any(-1)
        assert 0.05 < covered.mean() < 0.9, k          # the hand is there and fits
        assert not covered[0].any() and not covered[-1].any(), k  # not cut by the border
    assert np.abs(imgs["palm"].astype(int) - imgs["side"].astype(int)).mean() > 5
    with pytest.raises(ValueError, match="view"):
        mesh_view(v, hand.faces, view="top")
