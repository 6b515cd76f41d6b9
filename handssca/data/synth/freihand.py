"""Synthetic hands written as FreiHAND v2 (book/datasets_and_metrics.md, section FreiHAND).

Layout (N = ``n`` training samples, M = evaluation samples)::

    training/rgb/%08d.jpg        4 N images: sample id i in 4 versions, file index i + N k,
                                 k = 0 gs, 1 hom, 2 sample, 3 auto
    training/mask/%08d.jpg       N masks, one per id
    training_K.json              list[N] of 3x3
    training_mano.json           list[N] of 1x61
    training_xyz.json            list[N] of 21x3 (F order, FreiHAND fingertips)
    training_verts.json          list[N] of 778x3
    training_scale.json          list[N] of floats
    evaluation/rgb/%08d.jpg      M images, one version
    evaluation_{K,mano,xyz,verts,scale}.json   the same five lists for the evaluation ids
    synth_info.json              not in FreiHAND (see below)

Conventions (as the real files): 224 x 224 RGB JPEG; metres; the OpenCV camera frame (x right,
y down, z forward); right hands only; projection uv = (K X)[:2] / (K X)[2]. The 61 MANO values are
the pose (3 global axis-angle in the camera frame + 45 articulation values as offsets from the
hand model's ``hands_mean``, flat_hand_mean=False), the 10 betas, uv_root (the pixel of keypoint
9, the middle finger's MCP) and the weak-perspective scale s, with the root recovered as
((u - p_x) / s, (v - p_y) / s, f / s), f = (f_x + f_y) / 2; MANO(pose, betas) without translation,
moved so that its keypoint 9 lands on that root, is the stored mesh (verts) and its joints (xyz).
``training_scale.json`` holds the bone length ``|xyz[9] - xyz[10]|``, not s.

Decisions where the real format leaves room:

- f_x = f_y for every sample (f in 450..750 px), so that the recovery formula above is exact; the
  principal point is jittered around (112, 112) (v2 crops are warped, so it need not be centred).
- The four versions share one rendering: ``gs`` the hand over a green screen with uneven light;
  ``hom``, ``sample``, ``auto`` the same hand over three different procedural backgrounds, with the
  hand's colours harmonised (hom) or changed by random per-channel gains (sample, auto).
- Masks are single-channel (greyscale) JPEGs of the *visible* hand (255 hand, 0 elsewhere; read
  them with a threshold at 128, as JPEG blurs edges); a held object (15 % of the samples, as the
  real set has some) is not part of the mask. A free hand's articulation comes from the plain
  distribution; a holding hand's is drawn about its own grasp of the object
  (``scene.grasp_centres``).
- Evaluation images have a procedural background (the real evaluation set was recorded in
  front of real scenes, not a green screen); one version per id, no masks.
- JSON floats are rounded to 8 decimals (metres: 10 nm; K to 6 decimals); the lists are compact
  (no spaces). Annotations are computed with the hand model recorded in ``synth_info.json``
  ("hand_model"); a loader must use the same model to rebuild meshes from ``*_mano.json``.

``synth_info.json`` (not in FreiHAND) keys each image as ``training/rgb/%08d.jpg`` (the gs file,
id < N; the other versions share it) or ``evaluation/rgb/%08d.jpg``; each entry holds the hand's
``occlusion`` (1 - visible / amodal hand pixels), ``hand_px`` and ``visible_px``.
"""
from __future__ import annotations

import numpy as np

from . import backgrounds as B
from .common import Unit, jpeg_bytes, occlusion_record, rounded
from .engine import StyleWriter, write_json_lists
from .scene import (SMALL_OBJECT_IDS, Body, axis_angle, draw, grasp_centres, grasp_pose, lights, object_body,
                    object_color, pinhole, place, place_in_view, random_rotation, sample_articulation,
                    sample_shape, skin_color, stream)

SIZE = 224
VERSIONS = ("gs", "hom", "sample", "auto")
REAL_TRAIN, REAL_EVAL = 32560, 3960
OBJECT_SHARE = 0.15
JPEG_QUALITY = 92


class FreiHANDWriter(StyleWriter):
    """FreiHAND v2's layout (module docstring); a work unit is one sample (id) of a split."""

    style = "freihand"

    def __init__(self, out, n, seed, poser, timer, n_eval=None, **_):
        super().__init__(out, n, seed, poser, timer)
        if n_eval is None:
            n_eval = max(1, int(round(n * REAL_EVAL / REAL_TRAIN)))
        if isinstance(n_eval, bool) or not isinstance(n_eval, (int, np.integer)) or n_eval < 0:
            raise ValueError(f"synth freihand: n_eval must be a non-negative integer, got {n_eval!r}")
        self.n_eval = int(n_eval)

    def options(self) -> dict:
        """{"n_eval": M}."""
        return {"n_eval": self.n_eval}

    def units(self) -> list:
        """The training ids, then the evaluation ids."""
        return ([Unit(f"training/{i:08d}", ("training", i)) for i in range(self.n)]
                + [Unit(f"evaluation/{i:08d}", ("evaluation", i)) for i in range(self.n_eval)])

    # ------------------------------------------------------------------ one sample
    def sample(self, split: str, i: int) -> dict:
        """The scene and the annotation of one sample (no rendering)."""
        rng = stream(self.seed, "freihand", split, i)
        p = self.poser
        shape = sample_shape(rng)
        holds = rng.random() < OBJECT_SHARE
        oid = int(SMALL_OBJECT_IDS[rng.integers(len(SMALL_OBJECT_IDS))]) if holds else None
        # a hand that holds something: drawn about its own grasp of that object; else the plain
        # distribution
        art = sample_articulation(rng, True, *(grasp_centres(rng, oid) if holds else (None, None)))
        loc = p.local(True, art, shape)
        R = random_rotation(rng)
        f = rng.uniform(450.0, 750.0)
        pp = SIZE / 2 + np.clip(rng.normal(0.0, 4.0, 2), -10, 10)
        K = pinhole(f, f, pp[0], pp[1])
        rot = place(loc["vertices"], R, loc["J0"], np.zeros(3))
        extent = float(np.ptp(rot[:, :2], axis=0).max())
        depth = f * extent / (rng.uniform(0.6, 0.85) * SIZE)
        t = place_in_view(rot, K, pp + rng.normal(0.0, 5.0, 2), depth)
        verts = rot + t
        j16 = place(loc["joints16"], R, loc["J0"], t)
        xyz = p.joints21(True, verts, j16, "freihand")
        bodies = [Body(verts, p.faces[True], skin_color(rng), smooth=True, roughness=rng.uniform(0.45, 0.8),
                       double_sided=True)]
        if holds:
            j21_local = p.joints21(True, loc["vertices"], loc["joints16"], "freihand")
            Ro, to = grasp_pose(oid, j21_local, True, rng)
            bodies.append(object_body(oid, R @ Ro, R @ (to - loc["J0"]) + loc["J0"] + t, object_color(rng)))
        fm = 0.5 * (K[0, 0] + K[1, 1])
        uv_root = (K @ xyz[9])[:2] / xyz[9][2]
        s = fm / xyz[9][2]
        mano = np.concatenate([axis_angle(R), p.offsets(True, art), shape, uv_root, [s]])
        ann = {"K": rounded(K, 6), "mano": [rounded(mano, 8)], "xyz": rounded(xyz, 8), "verts": rounded(verts, 8),
               "scale": round(float(np.linalg.norm(xyz[9] - xyz[10])), 8)}
        return {"rng": rng, "K": K, "bodies": bodies, "annotation": ann}

    def run(self, unit: Unit) -> dict:
        """Render one sample; write its versions (training) or its image (evaluation) and mask."""
        split, i = unit.data
        with self.timer("pose"):
            s = self.sample(split, i)
        rng = s["rng"]
        with self.timer("render"):
            light_list, ambient = lights(rng)
            r = draw(s["bodies"], s["K"], SIZE, SIZE, light_list, ambient)
        visible = r.seg == 1
        record = {"samples": {f"{split}/rgb/{i:08d}.jpg": occlusion_record(visible, r.amodal[0])},
                  "annotation": s["annotation"], "renders": 1, "objects": len(s["bodies"]) - 1}
        hand_alpha = r.alpha * (r.seg == 1)  # hand coverage, for recolouring the hand only
        images = []
        with self.timer("compose"):
            if split == "training":
                for k, version in enumerate(VERSIONS):
                    if version == "gs":
                        bg = B.green_screen(rng, SIZE, SIZE)
                        img = B.composite(r.color, r.alpha, bg)
                    else:
                        bg = B.procedural(rng, SIZE, SIZE)
                        img = B.composite(r.color, r.alpha, bg)
                        if version == "hom":  # harmonise: pull the hand's colours towards the scene's mean
                            mean = bg.reshape(-1, 3).mean(0).astype(np.float32)
                            w = 0.15 * hand_alpha[..., None]
                            img = img * (1 - w) + (0.5 * img + 0.5 * mean[None, None]) * w
                        else:
                            img = B.recolor(rng, img, hand_alpha, 0.1 if version == "sample" else 0.2)
                    images.append((f"training/rgb/{i + self.n * k:08d}.jpg", B.camera_noise(rng, img)))
                mask = np.where(visible, 255, 0).astype(np.uint8)
            else:
                img = B.composite(r.color, r.alpha, B.procedural(rng, SIZE, SIZE))
                images.append((f"evaluation/rgb/{i:08d}.jpg", B.camera_noise(rng, img)))
                mask = None
        for rel, img in images:
            self.files.encoded(rel, jpeg_bytes, img, JPEG_QUALITY)
        if mask is not None:
            self.files.encoded(f"training/mask/{i:08d}.jpg", jpeg_bytes, mask, JPEG_QUALITY)
        record["images"] = len(images)
        return record

    # ------------------------------------------------------------------ aggregate files
    def finish(self, records: list, load) -> None:
        """The ten annotation lists, in id order (each record read once, the lists streamed)."""
        fields = ("K", "mano", "xyz", "verts", "scale")
        for split, lo, hi in (("training", 0, self.n), ("evaluation", self.n, self.n + self.n_eval)):
            write_json_lists({f: self.out / f"{split}_{f}.json" for f in fields},
                             (load(j)["annotation"] for j in range(lo, hi)), self.files.manifest)

    def counts(self, records: list) -> dict:
        """Ids, images and masks per split, and samples with a held object."""
        return {"training_ids": self.n, "training_images": 4 * self.n, "training_masks": self.n,
                "evaluation_ids": self.n_eval, "evaluation_images": self.n_eval,
                "with_object": sum(1 for r in records if r.get("objects", 0) > 0)}
