"""Inputs that would take gigabytes are refused before anything is allocated: an image whose
header declares more than MAX_IMAGE_PIXELS, and a checkpoint whose recorded network
configuration describes a huge network."""
from __future__ import annotations

import json
import struct
import zlib

import pytest
import torch

from handssca.__main__ import main as cli
from handssca.data.errors import ImageTooLargeError
from handssca.data.images import MAX_IMAGE_PIXELS, read_image
from handssca.engine import checkpoint as ckpt
from handssca.engine import runs
from handssca.engine.checkpoint import CheckpointMismatchError
from handssca.engine.prediction import read_rgb
from handssca.models import MAX_PARAMETERS, SIZE_BOUNDS, HandSSCAConfig, count_parameters
from handssca.models.backbone import LIGHT_MAX_BLOCKS, LIGHT_MAX_WIDTH


def _flat_png(path, width: int, height: int):
    """A valid black PNG of 1-bit pixels: a 12000 x 12000 one is about 20 kB on disk (and
    432 MB once decoded as RGB), written without ever holding the image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = (b"\x00" * (1 + -(-width // 8))) * height  # filter byte + packed bits per row
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory):
    return _flat_png(tmp_path_factory.mktemp("img") / "huge.png", 12000, 12000)


def test_a_huge_image_is_refused_from_its_header(huge_png):
    for read in (read_rgb, read_image):
        with pytest.raises(ImageTooLargeError) as err:
            read(huge_png)
        msg = str(err.value)
        assert str(huge_png) in msg and "12000 x 12000" in msg and f"{MAX_IMAGE_PIXELS:,}" in msg


def test_predict_refuses_a_huge_image_before_loading_anything(huge_png, tmp_path, capsys):
    # the checkpoint does not exist: the image's header is checked first
    assert cli(["predict", str(huge_png), "--checkpoint", str(tmp_path / "no-run"),
                "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "12000 x 12000" in err and "MAX_IMAGE_PIXELS" in err and "Scale it down" in err


def test_an_image_within_the_bound_still_reads(tmp_path):
    img = read_rgb(_flat_png(tmp_path / "small.png", 64, 48))
    assert img.shape == (48, 64, 3) and img.dtype.name == "uint8"


# ----------------------------------------------------------------------------------------------
SMOKE_NETWORK = dict(attention="ssca", input_size=128, C=16, hourglass_depth=1,
                     backbone={"kind": "light", "widths": [8, 8, 16, 16, 32]})


@pytest.mark.parametrize("field, value, message", [
    ("C", 100000, "C must be an int from 1 to 1024, got 100000"),
    ("expand", 1000, "expand must be an int from 1 to 4"),
    ("N", "16", "N must be an int"),
    ("hourglass_depth", 50, "hourglass_depth must be an int"),
    ("input_size", 100000, "input_size must be a multiple of 32 from 128 to 1024"),
    ("backbone", {"kind": "light", "widths": [8, 8, 16, 16, 100000]}, "widths"),
    ("backbone", {"kind": "light", "blocks": [1, 1, 1, 1000]}, "block counts"),
    ("attention", "huge", "attention must be one of"),
    ("drop_path", 5, "drop_path must be"),
])
def test_a_tampered_network_configuration_is_refused_before_building(tmp_path, monkeypatch,
                                                                     field, value, message):
    run = tmp_path / "run"
    ckpt.write_checkpoint(run, torch.nn.Linear(2, 2),
                          {"network": HandSSCAConfig(**SMOKE_NETWORK).to_dict(),
                           "dataset": "freihand", "data": "synthetic", "profile": "smoke"},
                          epoch=1)
    last = run / "checkpoints" / "last.json"
    record = json.loads(last.read_text())
    record["network"][field] = value
    last.write_text(json.dumps(record))

    def must_not_build(**kwargs):
        raise AssertionError(f"a network was built from the tampered configuration: {kwargs}")

    monkeypatch.setattr(runs, "build_model", must_not_build)
    with pytest.raises(CheckpointMismatchError) as err:
        runs.load_run(run, device="cpu")
    assert str(last) in str(err.value) and message in str(err.value)


@pytest.mark.parametrize("backbone", [{"kind": "resnet50"},
                                      {"kind": "light", "widths": [LIGHT_MAX_WIDTH] * 5,
                                       "blocks": [LIGHT_MAX_BLOCKS] * 4}],
                         ids=["resnet50", "light"])
def test_the_largest_configuration_within_the_bounds_has_at_most_max_parameters(backbone):
    # the parameter count grows with every size field, so the corner of the bounds is the
    # largest network a configuration that passes the checks can describe
    corner = {name: hi for name, (lo, hi) in SIZE_BOUNDS.items()}
    for attention in ("ssca", "ssa", "self_attention", "none"):
        for channel_select in ("code", "paper"):
            cfg = HandSSCAConfig(**corner, attention=attention, channel_select=channel_select,
                                 backbone=backbone)
            assert count_parameters(cfg) <= MAX_PARAMETERS, cfg
