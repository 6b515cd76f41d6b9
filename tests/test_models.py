"""The whole network: parameter counts, forward shapes, input checks, config, state dicts,
ImageNet weights, the loss of Eq. 4 and ``python -m handssca info``."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from handssca.hand import HandLayer, load_hand_model
from handssca.hand.rotations import axis_angle_to_matrix
from handssca.models import (Backbone, HandSSCAConfig, LossWeights, ResNet50, build_attention,
                             build_model, handssca_loss, load_imagenet_weights, normalise,
                             parameter_table)
from handssca.models.network import make_parts
from handssca.models.regressor import (Encoder, HeatmapHead, ManoHead, PreActBottleneck,
                                       soft_argmax)

ROOT = Path(__file__).resolve().parents[1]


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def hand_model():
    return load_hand_model()


@pytest.fixture(scope="module")
def hand_layer(hand_model):
    return HandLayer(hand_model, fingertips="manopth")


# ---------------------------------------------------------------------------------------------
# parameter counts (book/paper_vs_code.md, "The network"; `python -m handssca info`)
# ---------------------------------------------------------------------------------------------

def test_part_counts_match_the_authors_configuration():
    assert n_params(PreActBottleneck(256)) == 214_528
    assert n_params(HeatmapHead()) == 7 * 214_528 + 214_528 + 66_304 + 5_397 + 21 == 1_787_946
    assert n_params(Encoder()) == 5_632 + 65_792 + 8 * 214_528 == 1_787_648
    assert n_params(ManoHead()) == 1_628_778
    assert n_params(Backbone()) == 25_082_176
    assert n_params(ResNet50()) == 23_508_032  # torchvision's 25,557,032 less fc (2,049,000)


def test_attention_counts_and_total():
    ssca32 = build_attention("ssca", height=32, width=32)
    ssca28 = build_attention("ssca", height=28, width=28)
    assert n_params(ssca32) == 578_304
    assert n_params(ssca28) == 576_992
    assert n_params(ssca32.ss2d.channel) == 10_496
    assert n_params(build_attention("ssa")) == 567_808 == 578_304 - 10_496
    assert n_params(build_attention("none")) == 0
    # our Self-Attention definition: one ViT block (789,760) + position embedding (32*32*256)
    assert n_params(build_attention("self_attention")) == 789_760 + 32 * 32 * 256
    # the literal reading of channel select: 4 orders x (x_proj 1x33 + dt_proj 1+1 + A 16 + D 1)
    paper = build_attention("ssca", channel_select="paper")
    assert n_params(paper.ss2d.channel) == 4 * (33 + 2 + 16 + 1)
    assert n_params(build_attention("ssca", height=28, width=28, channel_select="paper")) == \
        n_params(paper)  # nothing depends on W

    rows = {r["key"]: r for r in parameter_table()}
    assert rows["total"]["parameters"] == 30_864_852
    assert rows["attention"]["parameters"] == 578_304
    assert rows["attention.channel"]["parameters"] == 10_496
    assert rows["total"]["paper"] == "31.8M" and rows["attention"]["paper"] == "0.58M"
    assert sum(r["parameters"] for r in rows.values() if r["level"] == 0 and r["key"] != "total") \
        == rows["total"]["parameters"]
    parts = make_parts(HandSSCAConfig(input_size=224))
    assert sum(n_params(m) for m in parts.values()) == 30_864_852 - 578_304 + 576_992


# ---------------------------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [256, 224])
@pytest.mark.parametrize("attention", ["none", "self_attention", "ssa", "ssca"])
def test_forward_shapes(attention, size, hand_model):
    torch.manual_seed(0)
    model = build_model(attention, size, hand_model=hand_model).eval()
    assert model.config.W == size // 8 and model.attention.kind == attention
    g = size // 8
    with torch.inference_mode():
        out = model(torch.randn(1, 3, size, size))
    expected = {
        "features": (1, 256, g, g), "attended": (1, 256, g, g), "heatmaps": (1, 21, g, g),
        "heatmap_probs": (1, 21, g, g), "joints2d": (1, 21, 2), "pose": (1, 48),
        "rotmats": (1, 16, 3, 3), "shape": (1, 10), "vertices": (1, 778, 3),
        "joints": (1, 21, 3),
    }
    assert {k: tuple(v.shape) for k, v in out.items()} == expected
    assert all(torch.isfinite(v).all() for v in out.values())
    uv = out["joints2d"]
    assert (uv > 0).all() and (uv < 1).all()
    if attention == "none":
        assert torch.equal(out["features"], out["attended"])
    else:
        assert not torch.allclose(out["features"], out["attended"])
    # the pose is the axis-angle of the rotation matrices
    assert torch.allclose(axis_angle_to_matrix(out["pose"].view(1, 16, 3)), out["rotmats"],
                          atol=1e-4)


def test_model_rejects_wrong_input(hand_model):
    model = build_model("none", 256, hand_model=hand_model)
    bad = [torch.randn(1, 4, 256, 256), torch.randn(1, 3, 224, 224),
           torch.zeros(1, 3, 256, 256, dtype=torch.uint8), torch.randn(3, 256, 256)]
    for x in bad:
        with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 256, 256\) float"):
            model(x)
    with pytest.raises(ValueError, match="input_size"):
        build_model("ssca", 250, hand_model=hand_model)
    with pytest.raises(ValueError, match="attention"):
        build_model("transformer", 256, hand_model=hand_model)
    with pytest.raises(ValueError, match="channel_select"):
        build_model("ssca", 256, hand_model=hand_model, channel_select="both")


def test_config_rebuilds_the_model_and_state_dict_round_trips(hand_model):
    model = build_model("ssca", 224, hand_model=hand_model, channel_select="code")
    cfg = dataclasses.asdict(model.config)
    json.dumps(cfg)  # JSON-serialisable
    assert cfg["input_size"] == 224 and cfg["N"] == 16 and model.config.W == 28
    rebuilt = build_model(**json.loads(json.dumps(cfg)), hand_model=hand_model)
    sd = model.state_dict()
    assert not any(k.startswith("hand_layer.") for k in sd)  # MANO data never in a checkpoint
    rebuilt.load_state_dict(sd)  # strict
    for k, v in rebuilt.state_dict().items():
        assert torch.equal(v, sd[k]), k
    # a checkpoint of another input size has other channel-branch shapes: refused
    other = build_model("ssca", 256, hand_model=hand_model)
    with pytest.raises(RuntimeError, match="channel"):
        other.load_state_dict(sd)


def test_the_config_names_the_backbone_and_rebuilds_a_light_network(hand_model):
    from handssca.models import LightBackbone, ResNet50

    assert build_model("none", 128, hand_model=hand_model).config.backbone == {"kind": "resnet50"}
    assert isinstance(build_model("none", 128, hand_model=hand_model).backbone.resnet, ResNet50)
    light = {"kind": "light", "widths": [8, 8, 16, 16, 32]}
    model = build_model("ssa", 128, hand_model=hand_model, C=16, hourglass_depth=1,
                        backbone=light)
    assert isinstance(model.backbone, LightBackbone)
    assert model.config.backbone == dict(light, blocks=[1, 1, 1, 1])  # completed
    rebuilt = build_model(**json.loads(json.dumps(model.config.to_dict())),
                          hand_model=hand_model)
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())  # strict: the same parts and shapes
    with pytest.raises(ValueError, match="backbone kind must be one of"):
        build_model("none", 128, hand_model=hand_model, backbone={"kind": "vgg"})
    with pytest.raises(ValueError, match=r"unexpected backbone options \['widths'\]"):
        build_model("none", 128, hand_model=hand_model,
                    backbone={"kind": "resnet50", "widths": [1, 2, 3, 4, 5]})
    with pytest.raises(ValueError, match="5 positive widths"):
        build_model("none", 128, hand_model=hand_model, backbone={"kind": "light",
                                                                  "widths": [8, 8]})
    with pytest.raises(ValueError, match="backbone must be a dict"):
        build_model("none", 128, hand_model=hand_model, backbone="light")


def test_normalise():
    img = torch.rand(2, 3, 8, 8)
    out = normalise(img)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert torch.allclose(out, (img - mean) / std)
    u8 = (img * 255).round().to(torch.uint8)
    assert torch.allclose(normalise(u8), (u8.float() / 255 - mean) / std)
    with pytest.raises(ValueError):
        normalise(torch.rand(2, 1, 8, 8))


def test_soft_argmax_pixel_centres():
    logits = torch.full((1, 2, 4, 8), -1e4)
    logits[0, 0, 3, 5] = 0.0  # a peak at row 3, column 5
    probs, uv = soft_argmax(logits, torch.ones(2))
    assert torch.allclose(uv[0, 0], torch.tensor([(5 + 0.5) / 8, (3 + 0.5) / 4]))
    # channel 1 is uniform: the centre
    assert torch.allclose(uv[0, 1], torch.tensor([0.5, 0.5]))
    assert torch.allclose(probs.sum((-1, -2)), torch.ones(1, 2))
    # the temperature sharpens: a larger inverse temperature moves uv towards the arg-max
    logits = torch.zeros(1, 1, 4, 4)
    logits[0, 0, 0, 0] = 1.0
    _, soft = soft_argmax(logits, torch.ones(1))
    _, sharp = soft_argmax(logits, torch.full((1,), 10.0))
    assert (sharp < soft).all()


# ---------------------------------------------------------------------------------------------
# ImageNet weights
# ---------------------------------------------------------------------------------------------

def torchvision_resnet50_state_dict(seed: int = 0, batches_tracked: bool = True) -> dict:
    """A state dict with torchvision's ``resnet50`` names and shapes, random values, written
    from torchvision's definition (stem, layer1..4 of 3-4-6-3 bottlenecks, fc 2048 -> 1000)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(name, out, inp, k):
        sd[name + ".weight"] = torch.randn(out, inp, k, k, generator=g)

    def bn(name, c):
        for p in ("weight", "bias", "running_mean"):
            sd[f"{name}.{p}"] = torch.randn(c, generator=g)
        sd[f"{name}.running_var"] = torch.rand(c, generator=g) + 0.5
        if batches_tracked:
            sd[f"{name}.num_batches_tracked"] = torch.tensor(7)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    inplanes = 64
    for i, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            p = f"layer{i}.{b}"
            conv(f"{p}.conv1", planes, inplanes, 1)
            bn(f"{p}.bn1", planes)
            conv(f"{p}.conv2", planes, planes, 3)
            bn(f"{p}.bn2", planes)
            conv(f"{p}.conv3", planes * 4, planes, 1)
            bn(f"{p}.bn3", planes * 4)
            if b == 0:
                conv(f"{p}.downsample.0", planes * 4, inplanes, 1)
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    sd["fc.weight"] = torch.randn(1000, 2048, generator=g)
    sd["fc.bias"] = torch.randn(1000, generator=g)
    return sd


def test_load_imagenet_weights_maps_every_key(tmp_path):
    sd = torchvision_resnet50_state_dict()
    n_learned = sum(v.numel() for k, v in sd.items()
                    if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert n_learned == 25_557_032  # torchvision's documented resnet50 parameter count
    backbone = Backbone()
    path = tmp_path / "resnet50.pth"
    torch.save({"epoch": 90, "state_dict": sd}, path)  # a checkpoint dict holding one
    info = load_imagenet_weights(backbone, path)
    own = backbone.resnet.state_dict()
    assert info == {"loaded": len(sd) - 2, "ignored": 2}
    assert set(own) == set(sd) - {"fc.weight", "fc.bias"}
    for k, v in own.items():
        assert torch.equal(v, sd[k]), k
    # a raw state dict without num_batches_tracked (torchvision's older files) loads too
    old = torchvision_resnet50_state_dict(seed=1, batches_tracked=False)
    resnet = ResNet50()
    load_imagenet_weights(resnet, old)
    assert torch.equal(resnet.layer4[2].conv3.weight, old["layer4.2.conv3.weight"])


def test_load_imagenet_weights_errors():
    resnet = ResNet50()
    before = resnet.conv1.weight.clone()
    sd = torchvision_resnet50_state_dict()
    missing = dict(sd)
    del missing["layer3.5.bn2.running_var"]
    with pytest.raises(ValueError, match=r"missing key .*'layer3\.5\.bn2\.running_var'"):
        load_imagenet_weights(resnet, missing)
    with pytest.raises(ValueError, match=r"unexpected key .*'layer5\.0\.conv1\.weight'"):
        load_imagenet_weights(resnet, {**sd, "layer5.0.conv1.weight": torch.zeros(1)})
    wrong = dict(sd)
    wrong["layer2.0.downsample.0.weight"] = torch.zeros(512, 256, 3, 3)
    with pytest.raises(ValueError, match=r"shape mismatch .*'layer2\.0\.downsample\.0\.weight'"):
        load_imagenet_weights(resnet, wrong)
    assert torch.equal(resnet.conv1.weight, before)  # nothing loaded on error
    with pytest.raises(FileNotFoundError):
        load_imagenet_weights(resnet, "/nonexistent/resnet50.pth")


# ---------------------------------------------------------------------------------------------
# the loss of Eq. 4
# ---------------------------------------------------------------------------------------------

def _targets(b: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"pose": 0.3 * torch.randn(b, 48, generator=g),
            "shape": torch.randn(b, 10, generator=g),
            "joints2d": torch.rand(b, 21, 2, generator=g)}


def _perfect_predictions(targets: dict, hand_layer) -> dict:
    out = hand_layer(targets["pose"], targets["shape"])
    return {"vertices": out["vertices"], "joints": out["joints"],
            "rotmats": axis_angle_to_matrix(targets["pose"].view(-1, 16, 3)),
            "shape": targets["shape"].clone(), "joints2d": targets["joints2d"].clone()}


def test_loss_zero_at_the_targets_and_weighted_terms(hand_layer):
    targets = _targets()
    perfect = _perfect_predictions(targets, hand_layer)
    zero = handssca_loss(perfect, targets, hand_layer)
    assert float(zero["total"]) < 1e-8

    g = torch.Generator().manual_seed(1)
    pred = {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in perfect.items()}
    w = LossWeights()
    out = handssca_loss(pred, targets, hand_layer, w)
    gt_v, gt_j = perfect["vertices"], perfect["joints"]
    manual = {
        "vertices": w.alpha_V * ((pred["vertices"] - gt_v) ** 2).mean(),
        "joints": w.alpha_3d * ((pred["joints"] - gt_j) ** 2).mean(),
        "pose": w.alpha_theta * ((pred["rotmats"] - perfect["rotmats"]) ** 2).mean(),
        "shape": w.alpha_beta * ((pred["shape"] - targets["shape"]) ** 2).mean(),
        "joints2d": w.alpha_2d * ((pred["joints2d"] - targets["joints2d"]) ** 2).mean(),
    }
    for k, v in manual.items():
        assert float(out[k]) > 0
        assert torch.allclose(out[k], v, rtol=1e-4), k
    assert torch.allclose(out["total"], sum(manual.values()), rtol=1e-5)
    assert (w.alpha_V, w.alpha_3d, w.alpha_theta, w.alpha_beta, w.alpha_2d) == \
        (1e4, 1e4, 10.0, 0.1, 100.0)
    # each alpha scales its own term only
    names = {"alpha_V": "vertices", "alpha_3d": "joints", "alpha_theta": "pose",
             "alpha_beta": "shape", "alpha_2d": "joints2d"}
    for field, term in names.items():
        w2 = dataclasses.replace(w, **{field: 3 * getattr(w, field)})
        out2 = handssca_loss(pred, targets, hand_layer, w2)
        for t in names.values():
            factor = 3.0 if t == term else 1.0
            assert torch.allclose(out2[t], factor * out[t], rtol=1e-5), (field, t)


def test_loss_rejects_bad_inputs(hand_layer):
    targets = _targets()
    pred = _perfect_predictions(targets, hand_layer)
    with pytest.raises(KeyError, match="joints2d"):
        handssca_loss({k: v for k, v in pred.items() if k != "joints2d"}, targets, hand_layer)
    with pytest.raises(ValueError, match=r"targets\['pose'\] must be \(B, 48\)"):
        handssca_loss(pred, {**targets, "pose": targets["pose"].view(2, 16, 3)}, hand_layer)


def test_loss_backward_through_the_network(hand_model):
    """One training step's gradient reaches the backbone, the heads and the attention block
    (at the smallest input size, 128, to keep it cheap: W = 16)."""
    torch.manual_seed(0)
    model = build_model("ssca", 128, hand_model=hand_model).train()
    out = model(torch.randn(1, 3, 128, 128))
    loss = model.compute_loss(out, _targets(b=1))
    loss["total"].backward()
    for name in ("backbone.resnet.conv1.weight", "attention.ss2d.channel.s6.A_log",
                 "attention.ss2d.spatial.s6.dt_proj_bias", "heatmap_head.inverse_temperature",
                 "encoder.heatmap_proj.weight", "mano_head.pose.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


# ---------------------------------------------------------------------------------------------
# python -m handssca info
# ---------------------------------------------------------------------------------------------

def test_info_command_prints_the_table():
    res = subprocess.run([sys.executable, "-m", "handssca", "info", "--input-size", "224"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    total = parameter_table(input_size=224)[-1]["parameters"]
    assert f"{total:,}" in res.stdout
    assert "31.8M" in res.stdout and "576,992" in res.stdout and "not reached" in res.stdout


def test_models_never_import_data_engine_or_viz():
    import ast

    forbidden = ("handssca.data", "handssca.engine", "handssca.viz")
    for path in sorted((ROOT / "handssca" / "models").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against handssca.models
                    pkg = ["handssca", "models"][: max(0, 2 - (node.level - 1))]
                    base = ".".join(pkg + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"
