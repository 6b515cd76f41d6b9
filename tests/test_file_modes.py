"""Files written atomically get the permissions an ordinary write gives (0o666 less the umask):
checkpoints, submissions and generated datasets in a lab's shared folder are readable as the
umask says, not 0600 as a temporary file would leave them."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

from handssca import submit
from handssca.data.synth import generate
from handssca.engine import checkpoint as ckpt
from handssca.utils import write_json_atomic


@pytest.fixture(params=[(0o022, 0o644), (0o077, 0o600)], ids=["umask-022", "umask-077"])
def umask(request):
    """Run the test under a umask; yields the mode an ordinary new file gets under it."""
    mask, mode = request.param
    old = os.umask(mask)
    try:
        yield mode
    finally:
        os.umask(old)


def _modes(folder) -> dict:
    """Permission bits of every regular file under ``folder``, by relative path."""
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode)
            for p in folder.rglob("*") if p.is_file()}


def test_a_checkpoint_follows_the_umask(tmp_path, umask):
    run = tmp_path / "run"
    ckpt.write_checkpoint(run, torch.nn.Linear(2, 2), {"network": {}}, epoch=1,
                          state={"step": 1}, best=True)
    modes = _modes(run)
    assert {"checkpoints/last.json", "checkpoints/best.json", "checkpoints/epoch-0001.safetensors",
            "checkpoints/epoch-0001.state.pt", "checkpoints/best-0001.safetensors"} <= set(modes)
    assert set(modes.values()) == {umask}, modes


def test_a_submission_follows_the_umask(tmp_path, umask):
    joints, verts = np.zeros((2, 21, 3)), np.zeros((2, 778, 3))
    files = [submit.write_freihand_pred(tmp_path / "pred.json", joints, verts),
             submit.write_dexycb_results(tmp_path / "dexycb.txt", [0, 1], joints),
             write_json_atomic(tmp_path / "metrics.json", {"mpjpe": 1.0})]
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == \
        {f.name: umask for f in files}


def test_a_generated_dataset_follows_the_umask(tmp_path, umask):
    generate("freihand", tmp_path / "synth", 1, seed=0, n_eval=0, show_progress=False)
    modes = _modes(tmp_path / "synth")
    assert len(modes) > 3 and set(modes.values()) == {umask}, modes


def test_the_mano_cache_follows_the_umask(tmp_path, umask):
    from handssca.hand.mano_file import _save_npz

    _save_npz(tmp_path / "mano" / "MANO_RIGHT-0.npz", {"f": np.zeros((3, 3), np.int32)})
    assert _modes(tmp_path / "mano") == {"MANO_RIGHT-0.npz": umask}
