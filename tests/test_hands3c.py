"""The authors' released weights: the key map against their key table, a file in their format
written from one of our networks and imported back (identical outputs, 256 and 224), every
refusal, the encoder's input (probabilities), and the command line's import -> evaluate /
predict path on smoke-sized synthetic data.

No real checkpoint exists here: the files in the authors' format are written by
``handssca.models.export_hands3c`` (their key set and shapes are checked against the table of
``tests/data/hands3c-checkpoint-keys.tsv`` first).
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from handssca.__main__ import main as cli
from handssca.models import (Hands3cFormatError, build_model, export_hands3c, import_hands3c,
                             load_hands3c, save_hands3c)
from handssca.models.hands3c import NON_WEIGHTS

TSV = Path(__file__).parent / "data" / "hands3c-checkpoint-keys.tsv"
SEED = 5


def _authors_table():
    rows = TSV.read_text().splitlines()[1:]
    return {k: tuple(json.loads(s.replace("(", "[").replace(")", "]").replace(",]", "]")))
            for k, s in (r.split("\t") for r in rows)}


@pytest.fixture(scope="module")
def hand():
    from handssca.hand import load_hand_model

    return load_hand_model()


def _perturbed(input_size, hand, seed):
    """The paper's network with every weight and buffer moved off its initial value, so that a
    key mapped to the wrong tensor (even one initialised alike: A_log, D, norms) changes the
    outputs."""
    torch.manual_seed(seed)
    model = build_model(attention="ssca", input_size=input_size, hand_model=hand)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
            elif name.endswith("num_batches_tracked"):
                t.fill_(int(torch.randint(1, 1000, ())))
            elif t.is_floating_point():
                t.add_(0.02 * torch.randn_like(t))
    return model.eval()


@pytest.fixture(scope="module")
def net256(hand):
    return _perturbed(256, hand, 0)


@pytest.fixture(scope="module")
def net224(hand):
    return _perturbed(224, hand, 1)


def _snapshot(model, path, epoch=7):
    torch.save({"epoch": epoch, "network": export_hands3c(model),
                "optimizer": {"state": {}, "param_groups": []}}, str(path))
    return path


# ----------------------------------------------------------------------------------------------
def test_exported_keys_and_shapes_are_the_authors_table(net256):
    table = _authors_table()
    assert len(table) == 715
    out = export_hands3c(net256)
    assert all(k.startswith("module.") for k in out)
    got = {k[len("module."):]: tuple(v.shape) for k, v in out.items()}
    assert set(got) == set(table)
    assert {k: s for k, s in got.items() if table[k] != s} == {}
    # 715 = 704 weights + 11 non-weights (the two soft-argmax grids and nine MANO buffers)
    assert len(NON_WEIGHTS) == 11 and set(NON_WEIGHTS) <= set(table)
    assert len(table) - len(NON_WEIGHTS) == len(net256.state_dict()) == 704
    # the grids are the pixel centres the soft-argmax uses
    uu, vv = out["module.regressor.hand_regHead.uu"], out["module.regressor.hand_regHead.vv"]
    assert uu[0, 0] == vv[0, 0] == 0.5 / 32 and uu[3, 5] == 5.5 / 32 and vv[3, 5] == 3.5 / 32


@pytest.mark.parametrize("size", [256, 224])
def test_a_file_in_the_authors_format_imports_to_identical_outputs(size, net256, net224, hand,
                                                                   tmp_path):
    src = net256 if size == 256 else net224
    path = _snapshot(src, tmp_path / "snapshot_7.pth.tar")
    sd, info = load_hands3c(path)
    assert info["input_size"] == size and info["W"] == size // 8 and info["epoch"] == 7
    assert info["prefixed"] and info["dropped"] == sorted(NON_WEIGHTS)
    for k, v in src.state_dict().items():
        assert torch.equal(sd[k], v), k
    fresh = build_model(attention="ssca", input_size=size, hand_model=hand).eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        before = fresh(x)["vertices"]
        fresh.load_state_dict(import_hands3c(path), strict=True)
        got, want = fresh(x), src(x)
    assert not torch.equal(before, want["vertices"])  # the fresh network did differ
    for key in ("heatmaps", "heatmap_probs", "joints2d", "pose", "shape", "vertices", "joints"):
        assert torch.equal(got[key], want[key]), key


def test_state_dicts_with_or_without_the_prefix_and_the_snapshot_dict(net224):
    bare = export_hands3c(net224, mano=False, prefix=False)
    assert not any(k.startswith("module.") for k in bare) and len(bare) == 706
    want = net224.state_dict()
    for source in (bare, export_hands3c(net224), {"epoch": 3, "network": bare}):
        sd = import_hands3c(source)
        assert sd.keys() == want.keys()
        assert all(torch.equal(sd[k], want[k]) for k in want)
    assert import_hands3c(bare)["heatmap_head.inverse_temperature"].shape == (21,)
    assert bare["regressor.hand_regHead.betas"].shape == (21, 1)


# ----------------------------------------------------------------------------------------------
def test_unknown_missing_and_misshapen_keys_are_named(net256):
    good = export_hands3c(net256, mano=False)
    extra = dict(good, **{"module.S3C.self_attention.extra.weight": torch.zeros(3)})
    with pytest.raises(Hands3cFormatError, match=r"unknown key 'S3C\.self_attention\.extra"):
        import_hands3c(extra)
    key = "module.regressor.hand_Encoder.reg.5.bn1.running_mean"
    with pytest.raises(Hands3cFormatError,
                       match=r"lacks the key 'regressor\.hand_Encoder\.reg\.5\.bn1\.running_mean' "
                             r"\(our 'encoder\.stages\.2\.1\.bn2\.running_mean', shape \(128,\)\)"):
        import_hands3c({k: v for k, v in good.items() if k != key})
    key = "module.backbone.latlayer2.weight"
    bad = dict(good, **{key: torch.zeros(256, 256, 1, 1)})
    with pytest.raises(Hands3cFormatError, match=r"'backbone\.latlayer2\.weight' \(our "
                       r"'backbone\.fpn\.lateral3\.weight'\) has shape \(256, 256, 1, 1\), "
                       r"expected \(256, 512, 1, 1\)"):
        import_hands3c(bad)
    bad = dict(good, **{"module.regressor.hand_regHead.uu": torch.zeros(28, 28)})
    with pytest.raises(Hands3cFormatError, match=r"hand_regHead\.uu.*\(28, 28\), expected \(32, 32\)"):
        import_hands3c(bad)


def test_input_size_is_read_from_the_shapes_and_a_disagreeing_one_refused(net224, net256):
    f224 = export_hands3c(net224, mano=False)
    assert import_hands3c(f224, input_size=224)["attention.ss2d.channel.s6.A_log"].shape == (112, 16)
    with pytest.raises(Hands3cFormatError, match=r"input size 256.*W = 28.*input size 224"):
        import_hands3c(f224, input_size=256)
    with pytest.raises(RuntimeError, match="size mismatch"):  # and the network itself refuses
        build_model(input_size=256, hand_model=net256.hand_model).load_state_dict(
            import_hands3c(f224), strict=True)


class _NotATensor:
    pass


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the plain pickle's, by design
def test_files_that_are_not_hands3c_checkpoints_say_what_they_look_like(net256, tmp_path):
    def refused(obj, pattern, name="f.pth.tar"):
        path = tmp_path / name
        torch.save(obj, str(path))
        with pytest.raises(Hands3cFormatError, match=pattern):
            import_hands3c(path)

    z = torch.zeros(2)
    refused({"module.backbone.layer0.0.weight": z, "module.FIT.attn.weight": z,
             "module.SET.attn.weight": z, "module.regressor.hand_regHead.betas": z},
            r"no SSCA block \(no 'S3C\.' keys\).*\['FIT', 'SET'\].*HandOccNet")
    refused({"conv1.weight": z, "layer1.0.conv1.weight": z, "fc.weight": z, "fc.bias": z},
            r"torchvision's ImageNet resnet50.*--imagenet-weights")
    small = build_model(input_size=128, C=16, hourglass_depth=1, hand_model=net256.hand_model,
                        backbone={"kind": "light", "widths": [8, 8, 8, 8, 8]})
    refused({"epoch": 1, "network": small.state_dict()}, "this package's own network")
    refused({"epoch": 1, "step": 4, "optimizer": {}, "scheduler": {}, "rng": {}, "history": []},
            "own training state")
    refused([z, z], r"expected a dict .* got list")
    refused({"epoch": 1, "network": [z]}, "'network' must be a state dict, got list")
    (tmp_path / "weights.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(Hands3cFormatError, match="safetensors.*load_run"):
        import_hands3c(tmp_path / "weights.safetensors")
    with open(tmp_path / "any.pkl", "wb") as fh:
        pickle.dump({"network": _NotATensor()}, fh)
    with pytest.raises(Hands3cFormatError, match=r"weights_only=True\) cannot read it"):
        import_hands3c(tmp_path / "any.pkl")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(Hands3cFormatError, match="cannot read it"):
        import_hands3c(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="not found"):
        import_hands3c(tmp_path / "missing.pth.tar")
    with pytest.raises(ValueError, match="the authors' network has C = 256; this model has 16"):
        export_hands3c(small)


# ----------------------------------------------------------------------------------------------
def test_the_encoder_reads_the_probabilities_not_the_scores(hand):
    """Adding a constant to each score map leaves its softmax, and so the mesh, unchanged; an
    encoder fed the raw scores would see a different input."""
    torch.manual_seed(SEED)
    model = build_model(input_size=128, C=16, hourglass_depth=1, hand_model=hand,
                        backbone={"kind": "light", "widths": [8, 8, 8, 8, 8]}).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        a = model(x)
        model.heatmap_head.score.bias.add_(torch.linspace(-3.0, 5.0, 21))  # scores + c per map
        b = model(x)
    assert not torch.allclose(a["heatmaps"], b["heatmaps"], atol=1e-2)
    torch.testing.assert_close(b["heatmap_probs"], a["heatmap_probs"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(b["vertices"], a["vertices"], rtol=1e-4, atol=1e-6)
    feats = model.heatmap_head(model.attention(model.backbone(x)))["head_features"]
    with torch.no_grad():
        raw_a, raw_b = model.encoder(a["heatmaps"], feats), model.encoder(b["heatmaps"], feats)
    assert (raw_a - raw_b).abs().max() > 1e-2 * raw_a.abs().max()


# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_root(home):
    """Synthetic FreiHAND-style data of the smoke profile (224 x 224 images)."""
    from handssca.engine.datasets import ensure_synthetic

    return ensure_synthetic("freihand", "smoke", SEED, log=lambda m: None)


@pytest.fixture(scope="module")
def mean_hand224(hand):
    """A 224 network whose MANO head starts at the mean hand: hands of a sensible size, which
    the submission writers accept (random heads give hands metres wide)."""
    from handssca.engine.factory import init_mean_hand

    torch.manual_seed(2)
    return init_mean_hand(build_model(attention="ssca", input_size=224, hand_model=hand)).eval()


@pytest.fixture(scope="module")
def imported(mean_hand224, home):
    """A FreiHAND (224) file in the authors' format, imported through the command line."""
    snap = save_hands3c(mean_hand224, home / "weights" / "snapshot_99.pth.tar", epoch=99)
    out = home / "runs" / "hands3c-freihand"
    assert cli(["import", "hands3c", str(snap), "--out", str(out), "--dataset", "freihand"]) == 0
    return snap, out


def test_import_writes_a_run_with_the_sources_provenance(imported, mean_hand224):
    from handssca.engine import load_run
    from handssca.engine.checkpoint import sha256_file

    snap, out = imported
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["config"]["kind"] == "import"
    assert run["config"]["source"] == {"file": "snapshot_99.pth.tar",
                                       "sha256": sha256_file(snap), "epoch": 99}
    assert run["config"]["dataset"] == "freihand"
    last = json.loads((out / "checkpoints" / "last.json").read_text())
    assert last["imported"]["sha256"] == sha256_file(snap) and last["epoch"] == 99
    assert last["data_root"] is None and last["network"]["input_size"] == 224
    loaded = load_run(out, device="cpu")
    assert loaded.imported["file"] == "snapshot_99.pth.tar" and loaded.seed is None
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded.model(x)["vertices"], mean_hand224(x)["vertices"])


def test_import_refuses_to_overwrite_anything_but_the_same_import(imported, net256, home,
                                                                  capsys):
    snap, out = imported
    weights = out / "checkpoints" / "epoch-0099.safetensors"
    before = weights.stat().st_mtime_ns
    assert cli(["import", "hands3c", str(snap), "--out", str(out), "--dataset", "freihand"]) == 0
    assert weights.stat().st_mtime_ns == before  # the same import: nothing rewritten
    assert cli(["import", "hands3c", str(snap), "--out", str(out)]) == 0  # any dataset of it
    assert weights.stat().st_mtime_ns == before
    # without --dataset, a 224 file is FreiHAND's
    assert cli(["import", "hands3c", str(snap), "--out", str(home / "auto")]) == 0
    assert json.loads((home / "auto" / "run.json").read_text())["config"]["dataset"] == "freihand"
    capsys.readouterr()
    assert cli(["import", "hands3c", str(snap), "--out", str(out), "--dataset", "dexycb"]) == 2
    assert "import of another file or dataset" in capsys.readouterr().err
    other = save_hands3c(net256, home / "weights" / "snapshot_5.pth.tar", epoch=5)
    assert cli(["import", "hands3c", str(other), "--out", str(out), "--dataset", "ho3d"]) == 2
    assert "choose another --out" in capsys.readouterr().err
    busy = home / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert cli(["import", "hands3c", str(other), "--out", str(busy)]) == 2
    assert "not an earlier import" in capsys.readouterr().err
    # the dataset fixes the input size: a 256 file is not FreiHAND's
    assert cli(["import", "hands3c", str(other), "--out", str(home / "x"),
                "--dataset", "freihand"]) == 2
    assert "input size 256" in capsys.readouterr().err and not (home / "x").exists()


def test_imported_run_evaluates_and_predicts(imported, data_root, tmp_path, capsys):
    _, out = imported
    capsys.readouterr()
    assert cli(["evaluate", "--checkpoint", str(out), "--batch-size", "2"]) == 2
    err = capsys.readouterr().err
    assert "imported weights" in err and "--data-root" in err
    assert cli(["evaluate", "--checkpoint", str(out), "--data-root", str(data_root),
                "--batch-size", "2", "--out", str(tmp_path / "eval")]) == 0
    rep = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert rep["data"] == "synthetic" and rep["dataset"] == "freihand"
    assert rep["model"]["imported"]["file"] == "snapshot_99.pth.tar"
    assert rep["provenance"]["profile"] == "imported" and rep["provenance"]["seed"] is None
    assert rep["metrics"]["pa_mpjpe"] > 0 and rep["baseline"]["metrics"]["pa_mpjpe"] > 0
    assert (tmp_path / "eval" / rep["submission"]).exists()
    printed = capsys.readouterr().out  # both constants, and the network against the better one
    assert "mean-pose constant:" in printed and "mean-articulation constant:" in printed
    assert "vs best constant" in printed and "the constant" in printed
    assert "baseline" not in printed
    # the Table 1 row it gives, beside the paper's
    from handssca.report import evaluation_table, format_value

    table = evaluation_table(tmp_path / "eval" / "metrics.json")
    assert table.caption.startswith("Table 1 (FreiHAND)") and "SYNTHETIC" in table.caption
    row = next(r for r in table.rows if r[0].startswith("HandSSCA"))
    assert format_value(rep["metrics"]["pa_mpjpe"], "mm") in row
    assert any("imported weights snapshot_99.pth.tar" in n for n in table.notes)
    const = next(r for r in table.rows if r[0] == "mean-articulation constant (ours)")
    assert format_value(rep["baseline_mean_articulation"]["metrics"]["pa_mpjpe"], "mm") in const
    img = data_root / "evaluation" / "rgb" / "00000000.jpg"
    assert cli(["predict", str(img), "--checkpoint", str(out), "--out", str(tmp_path / "pred"),
                "--no-overlay"]) == 0
    rec = json.loads((tmp_path / "pred" / "00000000.json").read_text())
    assert len(rec["joints"]) == 21 and len(rec["mano"]["pose"]) == 48
