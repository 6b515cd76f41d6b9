"""The three datasets' loaders, crops and augmentation (and, in :mod:`.synth`, synthetic data).

Each dataset is a ``torch.utils.data.Dataset`` reading the official layout as released, whose
items are the *sample dictionary* the engine relies on:

==============  ======================  ==========================================================
key             shape / type            meaning
==============  ======================  ==========================================================
``image``       float32 (3, S, S)       the crop, RGB, normalised with ``IMAGENET_MEAN``/``STD``
``joints2d``    float32 (21, 2)         2D joints in the crop, crop pixels / S, F order
``joints3d``    float32 (21, 3)         3D joints, metres, OpenCV camera frame (after the
                                        augmentation's rotation), minus the wrist (joint 0), F order
``vertices``    float32 (778, 3)        MANO mesh vertices, same frame, same wrist subtracted
``pose``        float32 (48,)           MANO axis-angle theta, articulation as offsets from
                                        hands_mean (flat_hand_mean=False), global rotation in the
                                        (augmented) camera frame
``shape``       float32 (10,)           MANO betas
``root``        float32 (3,)            the absolute wrist, metres, original camera frame
``K``           float32 (3, 3)          projects the sample's camera-frame points to crop pixels
``bbox``        float32 (4,)            the crop box [x1, y1, x2, y2] in the original image
``is_left``     bool                    a left hand, mirrored into a right hand
``occlusion``   float32                 fraction of hand pixels hidden (NaN when unknown)
``has_3d``      bool                    joints3d/vertices/pose/shape are targets (else zeros)
``index``       int64                   position in the dataset
``sample_id``   str                     the dataset's id of the sample
==============  ======================  ==========================================================

Datasets: :class:`FreiHAND` (:mod:`.freihand`), :class:`HO3D` (:mod:`.ho3d`), :class:`DexYCB`
(:mod:`.dexycb`). Each has ``to_protocol`` (predictions -> the official protocol's inputs) and
``write_submission``. What they share:

- :mod:`.files`: reading annotation files (and a synthetic root's ``synth_info.json``);
- :mod:`.errors`: a wrong layout, a corrupt sample, the count of skipped samples;
- :mod:`.geometry`: pixel and box conventions, projection, the crop transform, mirroring;
- :mod:`.augmentation`: HandOccNet's training augmentation;
- :mod:`.images`: reading, warping and normalising images;
- :mod:`.sample`: the raw sample and :func:`make_sample`, the chain to the sample dictionary;
- :mod:`.dataset`: :class:`HandDataset`, the loaders' base class.

This module never imports :mod:`handssca.models` nor pyrender; the dataset classes load on first
use.
"""
from __future__ import annotations

import importlib

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_LAZY = {
    "FreiHAND": "freihand", "HO3D": "ho3d", "DexYCB": "dexycb",
    "HandDataset": "dataset", "hand_model_for": "dataset",
    "RawSample": "sample", "SampleTransform": "sample", "make_sample": "sample", "sample_errors": "sample",
    "Augmentation": "augmentation", "sample_augmentation": "augmentation",
    "DatasetLayoutError": "errors", "CorruptSampleError": "errors", "TooManySkippedError": "errors",
    "unmirror": "geometry", "mirror_points": "geometry", "mirror_pose": "geometry", "project": "geometry",
    "denormalise_image": "images",
    "build_dataset": "registry", "DATASETS": "registry", "find_dataset": "registry",
    "dataset_source": "registry",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(list(_LAZY) + ["IMAGENET_MEAN", "IMAGENET_STD"])
