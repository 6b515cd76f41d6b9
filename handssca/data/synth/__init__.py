"""Synthetic occluded hands written in the exact on-disk formats of FreiHAND, HO3D and DexYCB.

``generate(style, out, n, seed)`` renders the hand model (the real MANO when installed, the
procedural MANO-format hand otherwise) off-screen with :mod:`handssca.render`, in plausible poses,
with held objects as occluders, and writes the files the real dataset would have, so that the
dataset loaders read them with the code that reads the real datasets. The command line is
``python -m handssca data synth --style {freihand,ho3d,dexycb} --out DIR --n N --seed S``.

Each style's module docstring states its layout and every decision the real format leaves open:
:mod:`.freihand`, :mod:`.ho3d`, :mod:`.dexycb`.

``synth_info.json`` (at the dataset's root; the real datasets do not have it)::

    generator, generator_version   "handssca.data.synth", the version of the bytes written
    style, seed, n, options        the arguments (options: FreiHAND n_eval; HO3D version;
                                   DexYCB toolkit_layout)
    hand_model                     {"kind": "mano" | "procedural", "source": file name}; the
                                   annotations are consistent with this model only
    complete                       false while being written (a killed run), true when done
    counts                         what was written (style-specific)
    occlusion                      summary (mean, quantiles) of the per-image occlusion
    samples                        {image path relative to the root, "/"-separated:
                                    {"occlusion": float in [0, 1] or null (no hand in the image),
                                     "hand_px": pixels of the hand rendered alone (in the image),
                                     "visible_px": those still seen with the objects in front}}

Generation is deterministic (the same arguments give the same bytes; each sample draws from its
own random stream seeded by (seed, its index)), writes nothing outside ``out``, writes every file
atomically, and resumes a killed run (a rerun with the same arguments skips finished samples).
A folder holding another synthetic dataset is refused unless ``overwrite``, which deletes only
the files the generator listed as its own (``synth_files.txt``) and refuses a folder holding
any other file; a non-empty folder that is not a synthetic dataset is always refused.
"""
from __future__ import annotations

from .common import GENERATOR_VERSION, INFO_FILE, SynthResult, read_info
from .engine import generate

STYLES = ("freihand", "ho3d", "dexycb")

__all__ = ["generate", "read_info", "SynthResult", "STYLES", "INFO_FILE", "GENERATOR_VERSION"]
