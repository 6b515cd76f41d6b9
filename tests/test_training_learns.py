"""The quick profile's network can overfit a few dozen images (the check a training result rests on).

A trained network means something only when it beats the best trivial predictor: one constant
hand of the training images' mean articulation and mean shape, scored with the same protocol
(PA-MPJPE). Before trusting any result, the network must be able to memorise a small fixed set:
here 48 HO-3D-style synthetic frames, trained through the engine's own ``train`` with the quick
profile's network, optimiser, schedule and loss weights, then scored on the same frames by the
engine's own ``evaluate``.

- without augmentation its PA-MPJPE must fall to at most 0.3x the constant's;
- with the training augmentation (scale, rotation, colour) at most 0.5x.

Both failed before the learning-rate warm-up: Adam's first updates threw the MANO head away from
the mean hand (PA-MPJPE 9 -> 25-30 mm within 25 steps) and the network spent the rest of the run
climbing back (book chapter 07, "Why the first networks did not learn").
"""
from __future__ import annotations

import pytest

from handssca.data import synth
from handssca.engine.evaluation import evaluate
from handssca.engine.trainer import train

pytestmark = pytest.mark.slow

#: frames of the fixed training set: 7 sequences of 8 frames, 6 of them in the training split
N_FRAMES, FRAMES_PER_SEQUENCE = 56, 8
#: passes over the 48 frames (batch 16: three optimiser steps each; measured 0.17x and 0.28x)
BATCH, EPOCHS = 16, {False: 80, True: 140}
LIMITS = {False: 0.3, True: 0.5}


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("overfit") / "ho3d"
    synth.generate("ho3d", root, n=N_FRAMES, seed=0, frames_per_sequence=FRAMES_PER_SEQUENCE)
    return root


def _overfit(root, out, augment: bool) -> dict:
    epochs = EPOCHS[augment]
    overrides = {"epochs": epochs, "batch_size": BATCH, "val_fraction": 0.0, "augment": augment,
                 # one learning rate after the warm-up: the quick schedule's steps are sized for
                 # its own epochs, not for these 3-step ones
                 "lr_step": {"every": epochs, "gamma": 1.0}}
    run = train("ho3d", root, profile="quick", attention="ssca", out=out, seed=0,
                overrides=overrides, num_workers=0, verbose=False, tensorboard=False)
    return evaluate(run.path, split="train", verbose=False)


@pytest.mark.parametrize("augment", [False, True], ids=["no-augmentation", "augmentation"])
def test_quick_network_overfits_a_few_dozen_frames(frames, tmp_path, augment):
    result = _overfit(frames, tmp_path / "run", augment)
    ours = result["metrics"]["pa_mpjpe"]
    constant = result["baseline_mean_articulation"]["metrics"]["pa_mpjpe"]
    assert result["n_samples"] == N_FRAMES - FRAMES_PER_SEQUENCE
    ratio = ours / constant
    assert ratio <= LIMITS[augment], (
        f"PA-MPJPE on its own {result['n_samples']} training frames {ours:.2f} mm, "
        f"{ratio:.2f}x the mean-articulation constant's {constant:.2f} mm "
        f"(limit {LIMITS[augment]}x, augmentation {augment})")
