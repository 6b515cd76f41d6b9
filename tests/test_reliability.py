"""Guarantees of the README's reliability table that no other test shows: training,
evaluating and predicting open no network connection, and write nothing into the data folder a
user gives (``--data-root``): every file there keeps its bytes and times, none is added; and
an annotation pickle that would run code is refused without running it.
"""
from __future__ import annotations

import pickle
import shutil
import socket

import pytest

from handssca.engine import evaluate, predict, train

SEED = 5


def _snapshot(root):
    """Every entry under ``root``: relative path -> (size, modification time in ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))} | {".": (0, root.stat().st_mtime_ns)}


@pytest.fixture
def no_network(monkeypatch):
    """Sockets that refuse to reach another machine (local pipes still work); the attempts are
    recorded, so a test fails even where the code would swallow the error."""
    attempts = []
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"no network in this test (tried {address!r})")
        return real_connect(self, address)

    def refused(*args, **kwargs):
        attempts.append(args)
        raise OSError(f"no network in this test (tried {args!r})")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", refused)
    monkeypatch.setattr(socket, "getaddrinfo", refused)
    return attempts


def test_train_evaluate_predict_use_no_network_and_leave_the_data_folder_as_it_was(
        home, tmp_path, no_network):
    from handssca.engine.datasets import ensure_synthetic

    made = ensure_synthetic("freihand", "smoke", SEED, log=lambda m: None)
    user = tmp_path / "FreiHAND_pub_v2"  # the user's copy, given as --data-root
    shutil.copytree(made, user)
    before = _snapshot(user)

    summary = train("freihand", user, profile="smoke", out=home / "runs" / "offline", seed=SEED,
                    overrides={"epochs": 1}, verbose=False)
    assert summary["status"] == "complete"
    report = evaluate(summary.path, data_root=user, split="test", out=tmp_path / "eval",
                      verbose=False)
    assert report["metrics"] is not None
    image = next(p for p in sorted(user.rglob("*.jpg")))
    predict([image], summary.path, tmp_path / "pred", verbose=False)

    assert no_network == []
    assert _snapshot(user) == before


class _Planted:
    """A pickle that, unpickled by the standard library, would create a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_hostile_annotation_pickle_is_refused_and_never_run(tmp_path):
    from handssca.data.errors import CorruptSampleError
    from handssca.data.files import load_pickle

    marker = tmp_path / "ran"
    path = tmp_path / "0000.pkl"  # where HO3D keeps a frame's meta file
    path.write_bytes(pickle.dumps({"handPose": _Planted(marker)}, protocol=2))
    with pytest.raises(CorruptSampleError, match="0000.pkl"):
        load_pickle(path)
    assert not marker.exists()
