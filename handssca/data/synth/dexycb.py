"""Synthetic grasping sequences written as DexYCB (book/datasets_and_metrics.md, section DexYCB).

Layout::

    <YYYYMMDD>-subject-XX/<YYYYMMDD_HHMMSS>/meta.yml
    <YYYYMMDD>-subject-XX/<YYYYMMDD_HHMMSS>/<serial>/color_%06d.jpg                 640 x 480
    <YYYYMMDD>-subject-XX/<YYYYMMDD_HHMMSS>/<serial>/aligned_depth_to_color_%06d.png  uint16, mm
    <YYYYMMDD>-subject-XX/<YYYYMMDD_HHMMSS>/<serial>/labels_%06d.npz
    calibration/intrinsics/<serial>_640x480.yml       color: {fx, fy, ppx, ppy} (and depth: the same)
    calibration/extrinsics_<YYYYMMDD_HHMMSS>/extrinsics.yml
    calibration/mano_<YYYYMMDD>-subject-XX/mano.yml    betas: [10 values]
    models/<ycb_name>/textured_simple.obj             the objects, metres, model frame
    synth_info.json                                   not in DexYCB (see handssca.data.synth)

The ten subject folders are the toolkit's (20200709-subject-01 ... 20201022-subject-10), the eight
serials the toolkit's, the object ids and names its ``_YCB_CLASSES`` table (1..21).

``labels_%06d.npz`` (as the real files; all in the frame of that serial's camera, OpenCV: x right,
y down, z forward)::

    seg       (480, 640) uint8   0 background, the YCB id (1..21) of a visible object, 255 the hand
    pose_y    (num_obj, 3, 4) float32   [R | t] of each object of meta's ycb_ids (in that order):
                                        X = R p + t for model points p (metres)
    pose_m    (1, 51) float32   3 global axis-angle + 45 PCA coefficients of the side's MANO
                                (use_pca=True, ncomps=45, flat_hand_mean=False: the articulation
                                is coeffs @ hands_components, an offset from hands_mean), then the
                                translation t of manopth's convention: vertices =
                                MANO(pose, betas) + t (MANO rotating about its shaped root joint J0,
                                so t is not the wrist position)
    joint_3d  (1, 21, 3) float32   metres, F order (manopth), fingertips of manopth's convention
                                   (745, 317, 444, 556, 673; left real MANO: middle 445)
    joint_2d  (1, 21, 2) float32   pixels, the projection of joint_3d with the serial's intrinsics

Frames without a hand annotation ("invalid", as in the real data) have ``pose_m`` all 0 and
``joint_3d`` / ``joint_2d`` all -1; their images show the objects on the table and no hand.

``meta.yml``: serials (those recorded in this sequence, in the toolkit's order), num_frames,
ycb_ids (sorted), ycb_grasp_ind (index of the grasped object in ycb_ids), mano_sides ([right] or
[left]), mano_calib ([subject folder name]), extrinsics (the calibration id, a string).

``extrinsics.yml``: ``extrinsics: {serial: [12 values], apriltag: [12 values]}`` (3 x 4 row-major
[R | t] mapping camera coordinates to the master camera's, and the table frame (z up) to the
master's) and ``master: '840412060917'``.

Two layouts (``toolkit_layout``):

- **compact** (the default; the book's): how ``n`` (colour images, all cameras) is spread:
  Q = clip(5 round(n / 100), 10, 1000) sequences (about 20 images each), at least 20 once
  n >= 40, so n >= 10. Sequence q has n // Q (+1 for q < n mod Q) images, recorded by 2 cameras
  (the master, 840412060917, and one other) when that count is even, else by the master alone;
  num_frames = images / cameras. Sequences go to subjects in blocks of five trials: block
  b = q // 5 goes to subject (01, 03, 02, 04, 05, ..., 10)[b mod 10] as trials
  5 (b // 10) .. 5 (b // 10) + 4, so even the first 10 sequences give the s0 split a train part
  (trials i mod 5 != 4), a val part (subject-01, trial 4) and a test part (subject-03, trial 4),
  and 20 sequences give val and test two sequences each. A loader must take the cameras of a
  sequence from ``meta.yml``'s ``serials`` (the real data always lists all eight) and must not
  assume 100 sequences per subject (the toolkit asserts it): the toolkit does not read this layout.
- **toolkit** (``toolkit_layout=True``): what the toolkit's ``DexYCBDataset`` reads as it is:
  the ten subjects with 100 sequences each (trial i grasps object i // 5 + 1, as the real
  recordings grasp each of 20 objects in five trials), every sequence recorded by all eight
  cameras, F = n / 8 frames spread over the 1000 sequences (num_frames = F // 1000, one more for
  the first F mod 1000), so n must be a multiple of 8 and at least 8000: one frame per sequence
  is the smallest faithful folder (8000 images: about 9 minutes at the 15 images per second of
  ``bench synth`` on 2 CPU cores; the book does not use it). The
  toolkit reads the calibration and every sequence's ``meta.yml`` at construction and forms the
  image and label paths of every camera's frames; all of them are written.
- Sequence folders are named <date>_HHMMSS with the time growing with the trial index.
- Sides: within each part of the s0 split (train, val, test), sequences alternate right and left
  hands in the order q (starting right in train and val, left in test, so that even the smallest
  set, one val and one test sequence, evaluates both sides), so every part with two sequences or
  more holds both, in the proportion of the real recordings (about one sequence in two is a left
  hand). A left sequence uses the left hand model (``mano_sides: [left]``), its pose_m is in the
  left model's PCA space, and the same subject betas serve both sides.
- Grasps: a sequence's keyframe articulations are drawn about its own grasp (closure set by
  the grasped object's thickness, plus randomness; ``scene.grasp_centres``), and its hand never
  turns its palm, with the object against it, towards the master camera (the camera of every
  sequence, within 30 degrees); a sequence whose labelled keyframes and last frame all hide more
  than 90 % of the hand from the master camera (estimated from quarter-size renderings, within
  0.015 of the full-size share) draws its rotations again. So no sequence is hidden whole.
- Invalid frames: frame 0 of every sequence with q mod 4 == 3 that has more than one frame (a
  sequence of one frame keeps its hand).
- One extrinsics calibration per subject (id <date>_080000), eight cameras around a table 0.65-0.95
  m from the workspace; the hand moves smoothly 12-28 cm above the table holding one of the
  sequence's objects; the others rest on the table.
- Depth: the rendered surfaces, and the table plane behind them (0 beyond the table's edges).
  The table's texture and each camera's backdrop are fixed per subject (one lab per subject).
- Annotations are computed with the hand model recorded in ``synth_info.json`` ("hand_model").
"""
from __future__ import annotations

import numpy as np

from . import backgrounds as B
from .common import Unit, jpeg_bytes, npz_bytes, obj_text, occlusion_record, png_bytes, yaml_text
from .engine import StyleWriter
from .scene import (MAX_HIDDEN, REDRAWS, YCB_OBJECTS, Body, axis_angle, draw, estimated_occlusion,
                    grasp_centres, grasp_pose, key_rotations, look_at, object_body, object_color, object_extents,
                    object_mesh, palm_frame, pinhole, place, rotation_about, sample_articulation, sample_shape,
                    skin_color, slerp, smooth_track, stream)

W, H = 640, 480
SUBJECTS = ("20200709-subject-01", "20200813-subject-02", "20200820-subject-03", "20200903-subject-04",
            "20200908-subject-05", "20200918-subject-06", "20200928-subject-07", "20201002-subject-08",
            "20201015-subject-09", "20201022-subject-10")
SERIALS = ("836212060125", "839512060362", "840412060917", "841412060263", "932122060857", "932122060861",
           "932122061900", "932122062010")
MASTER = "840412060917"
SUBJECT_ORDER = (0, 2, 1, 3, 4, 5, 6, 7, 8, 9)  # blocks of 5 trials: subject-01, -03, -02, -04, ...
IMAGES_PER_SEQUENCE = 20
KEY_EVERY = 12
ROTATION_STEP = (0.1, 0.4)  # radians between keyframes
JPEG_QUALITY = 92
TABLE_HALF = (0.6, 0.45)  # metres, the table's half extents along its x and y


TOOLKIT_SEQUENCES = 100  # per subject, as the toolkit asserts
TOOLKIT_MIN_IMAGES = len(SUBJECTS) * TOOLKIT_SEQUENCES * len(SERIALS)


def sequence_plan(n: int, toolkit_layout: bool = False) -> list:
    """Per sequence: (subject index, trial index, images) for n images (module docstring)."""
    if toolkit_layout:
        return toolkit_plan(n)
    if n < 10:
        raise ValueError(f"synth dexycb: n must be at least 10 (10 sequences, so that the s0 split has "
                         f"train, val and test images), got {n}")
    q_total = int(np.clip(5 * round(n / (5 * IMAGES_PER_SEQUENCE)), 10 if n < 40 else 20, 1000))
    plan = []
    for q in range(q_total):
        b = q // 5
        plan.append((SUBJECT_ORDER[b % 10], 5 * (b // 10) + q % 5, n // q_total + (1 if q < n % q_total else 0)))
    return plan


def toolkit_plan(n: int) -> list:
    """The toolkit layout's sequences: (subject, trial, images), subject by subject, 100 trials
    each, every one seen by the eight cameras (module docstring)."""
    if n < TOOLKIT_MIN_IMAGES or n % len(SERIALS):
        raise ValueError(f"synth dexycb: with toolkit_layout, n must be a multiple of {len(SERIALS)} and at "
                         f"least {TOOLKIT_MIN_IMAGES} (10 subjects x 100 sequences x 8 cameras, one frame "
                         f"each), got {n}")
    frames, q_total = n // len(SERIALS), len(SUBJECTS) * TOOLKIT_SEQUENCES
    return [(q // TOOLKIT_SEQUENCES, q % TOOLKIT_SEQUENCES,
             len(SERIALS) * (frames // q_total + (1 if q < frames % q_total else 0))) for q in range(q_total)]


def s0_part(subject: int, trial: int) -> str:
    """The s0 split a sequence belongs to: "train" (trial mod 5 != 4), else "val" (subjects 01,
    02) or "test" (book/datasets_and_metrics.md, section The S0
    split)."""
    return "train" if trial % 5 != 4 else ("val" if subject in (0, 1) else "test")


def alternating_sides(plan: list) -> list:
    """Per sequence, whether its hand is a left one: within each s0 part, in plan order,
    alternately right and left, starting right in train and val and left in test (module
    docstring)."""
    seen = {"train": 0, "val": 0, "test": 1}
    left = []
    for subject, trial, _ in plan:
        part = s0_part(subject, trial)
        left.append(seen[part] % 2 == 1)
        seen[part] += 1
    return left


def sequence_name(subject: int, trial: int) -> str:
    """<date>_HHMMSS, later for later trials (sorted by name = sorted by trial)."""
    date = SUBJECTS[subject].split("-")[0]
    s = 9 * 3600 + 151 * trial
    return f"{date}_{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}"


def rest_pose(ycb_id: int, xy: np.ndarray, yaw: float) -> tuple:
    """(R, t) of an object lying on the table (z = 0, up +z) on its largest face, at xy."""
    ext = object_extents(ycb_id)
    order = np.argsort(ext)  # the smallest extent vertical
    R0 = np.zeros((3, 3))
    R0[:, order[0]] = [0, 0, 1]
    R0[:, order[1]] = [0, 1, 0]
    R0[:, order[2]] = [1, 0, 0]
    if np.linalg.det(R0) < 0:
        R0[:, order[1]] *= -1
    R = rotation_about([0, 0, 1], yaw) @ R0
    return R, np.array([xy[0], xy[1], 0.5 * ext[order[0]] + 0.001])


class DexYCBWriter(StyleWriter):
    """DexYCB's layout (module docstring); a work unit is one frame of a sequence, all its cameras."""

    style = "dexycb"

    def __init__(self, out, n, seed, poser, timer, toolkit_layout=False, **_):
        super().__init__(out, n, seed, poser, timer)
        self.toolkit_layout = bool(toolkit_layout)
        self.plan = sequence_plan(self.n, self.toolkit_layout)
        self._left = alternating_sides(self.plan)
        self._rigs = {}
        self._cache = {}
        self._views = {}

    def options(self) -> dict:
        """{"toolkit_layout": True} for the toolkit layout; {} for the compact one."""
        return {"toolkit_layout": True} if self.toolkit_layout else {}

    def units(self) -> list:
        """One unit per (sequence, frame), sequence by sequence."""
        return [Unit(f"{self.seq_dir(q)}/{f:06d}", (q, f)) for q in range(len(self.plan))
                for f in range(self.layout(q)[1])]

    # ------------------------------------------------------------------ structure
    def layout(self, q: int) -> tuple:
        """(serials, num_frames) of sequence q."""
        images = self.plan[q][2]
        if self.toolkit_layout:
            return SERIALS, images // len(SERIALS)
        if images % 2 == 0:
            serials = (MASTER, SERIALS[self._other_camera(q)])
            serials = tuple(s for s in SERIALS if s in serials)  # the toolkit's order
        else:
            serials = (MASTER,)
        return serials, images // len(serials)

    def _other_camera(self, q: int) -> int:
        choices = [k for k, s in enumerate(SERIALS) if s != MASTER]
        return choices[int(stream(self.seed, "dexycb", "camera", q).integers(len(choices)))]

    def seq_dir(self, q: int) -> str:
        """``<subject>/<sequence>`` of sequence q, relative to the root."""
        subject, trial, _ = self.plan[q]
        return f"{SUBJECTS[subject]}/{sequence_name(subject, trial)}"

    def is_left(self, q: int) -> bool:
        """Whether sequence q shows a left hand (:func:`alternating_sides`)."""
        return self._left[q]

    def is_invalid(self, q: int, f: int) -> bool:
        """Frames without a hand annotation: frame 0 of the sequences with q mod 4 == 3 that have
        more frames (a sequence keeps a labelled hand, so every split keeps both sides)."""
        return f == 0 and q % 4 == 3 and self.layout(q)[1] > 1

    def extrinsics_id(self, subject: int) -> str:
        """The calibration id of a subject's camera rig (``meta.yml``'s extrinsics)."""
        return SUBJECTS[subject].split("-")[0] + "_080000"

    def betas(self, subject: int) -> np.ndarray:
        """The subject's MANO betas (10,), shared by all its sequences and both hands."""
        return sample_shape(stream(self.seed, "dexycb", "subject", subject))

    def intrinsics(self, serial: str) -> dict:
        """A camera's intrinsics as the toolkit's yml stores them: {fx, fy, ppx, ppy}."""
        rng = stream(self.seed, "dexycb", "intrinsics", serial)
        fx = rng.uniform(608.0, 618.0)
        return {"fx": round(fx, 3), "fy": round(fx - rng.uniform(0.0, 2.0), 3),
                "ppx": round(rng.uniform(306.0, 326.0), 3), "ppy": round(rng.uniform(236.0, 252.0), 3)}

    def K(self, serial: str) -> np.ndarray:
        """A camera's K (3, 3)."""
        c = self.intrinsics(serial)
        return pinhole(c["fx"], c["fy"], c["ppx"], c["ppy"])

    def rig(self, subject: int) -> dict:
        """Camera poses of a subject's calibration: {serial: (R_tc, C)} camera-to-table (columns:
        the camera's axes in the table frame) and the camera centre, table frame z up."""
        if subject in self._rigs:
            return self._rigs[subject]
        rng = stream(self.seed, "dexycb", "rig", subject)
        centre = np.array([0.0, 0.0, 0.18])
        cams = {}
        for k, serial in enumerate(SERIALS):
            az = 2 * np.pi * k / len(SERIALS) + rng.normal(0.0, 0.15)
            el = rng.uniform(0.5, 1.05)
            d = rng.uniform(0.65, 0.95)
            C = centre + d * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
            R = look_at(C, centre + rng.normal(0.0, 0.03, 3), np.array([0.0, 0.0, -1.0]))
            R = R @ rotation_about([0, 0, 1], rng.normal(0.0, 0.05))  # a little roll
            cams[serial] = (R, C)
        self._rigs[subject] = cams
        return cams

    # ------------------------------------------------------------------ static files
    def write_static(self) -> None:
        """Calibration files, every sequence's ``meta.yml`` and the object models."""
        for serial in SERIALS:
            c = self.intrinsics(serial)
            self.files.text(f"calibration/intrinsics/{serial}_640x480.yml", yaml_text({"color": c, "depth": dict(c)}))
        for subject in sorted({p[0] for p in self.plan}):
            cams = self.rig(subject)
            Rm, Cm = cams[MASTER]
            extr = {}
            for serial, (R, C) in cams.items():
                # camera -> master: X_m = Rm^T (R X_c + C - Cm)
                extr[serial] = _row_major(Rm.T @ R, Rm.T @ (C - Cm))
            extr["apriltag"] = _row_major(Rm.T, -Rm.T @ Cm)
            self.files.text(f"calibration/extrinsics_{self.extrinsics_id(subject)}/extrinsics.yml",
                            yaml_text({"extrinsics": extr, "master": MASTER}))
            self.files.text(f"calibration/mano_{SUBJECTS[subject]}/mano.yml",
                            yaml_text({"betas": [round(float(b), 6) for b in self.betas(subject)]}))
        for q in range(len(self.plan)):
            serials, frames = self.layout(q)
            m = self.sequence_meta(q)
            meta = {"serials": list(serials), "num_frames": int(frames), "ycb_ids": m["ycb_ids"],
                    "ycb_grasp_ind": m["grasp_ind"], "mano_sides": ["left" if self.is_left(q) else "right"],
                    "mano_calib": [SUBJECTS[self.plan[q][0]]], "extrinsics": self.extrinsics_id(self.plan[q][0])}
            self.files.text(f"{self.seq_dir(q)}/meta.yml", yaml_text(meta))
        for oid, o in YCB_OBJECTS.items():
            v, f, _ = object_mesh(oid)
            self.files.text(f"models/{o.name}/textured_simple.obj", obj_text(v, f, o.name))

    def sequence_meta(self, q: int) -> dict:
        """The objects of sequence q: ycb_ids (sorted) and the grasped one's index."""
        rng = stream(self.seed, "dexycb", "objects", q)
        grasped = int(rng.integers(1, 22))
        if self.toolkit_layout:  # the real recordings: five trials per object, 20 objects
            grasped = self.plan[q][1] // 5 + 1
        others = [int(i) for i in rng.choice([i for i in range(1, 22) if i != grasped],
                                             size=int(rng.integers(1, 4)), replace=False)]
        ids = sorted([grasped] + others)
        return {"ycb_ids": ids, "grasp_ind": ids.index(grasped), "grasped": grasped}

    # ------------------------------------------------------------------ sequences
    def sequence(self, q: int) -> dict:
        """Everything fixed in sequence q, in the table frame (cached for the current sequence)."""
        if q in self._cache:
            return self._cache[q]
        p = self.poser
        subject = self.plan[q][0]
        serials, frames = self.layout(q)
        right = not self.is_left(q)
        meta = self.sequence_meta(q)
        rng = stream(self.seed, "dexycb", "sequence", q)
        shape = self.betas(subject)
        n_keys, track = smooth_track(rng, frames, KEY_EVERY)
        closure, spread = grasp_centres(rng, meta["grasped"])  # this sequence's grasp
        arts = [sample_articulation(rng, right, closure, spread) for _ in range(n_keys)]
        loc0 = p.local(right, arts[0], shape)
        j21 = p.joints21(right, loc0["vertices"], loc0["joints16"], "manopth")
        Ro, to = grasp_pose(meta["grasped"], j21, right, rng)
        base = np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), rng.uniform(0.12, 0.2)])
        positions = [base + np.array([rng.normal(0, 0.03), rng.normal(0, 0.03), rng.uniform(0.0, 0.08)])
                     for _ in range(n_keys)]
        # the palm (and the object against it) never faces the master camera, which records
        # every sequence: no sequence is hidden whole
        master = self.rig(subject)[MASTER][1]
        palm_normal, to_master = palm_frame(j21, right)[1], [master - x for x in positions]
        rots = key_rotations(rng, palm_normal, to_master, ROTATION_STEP)
        # objects at rest on the table, away from the hand's column
        rest = {}
        for oid in meta["ycb_ids"]:
            for _ in range(100):
                xy = rng.uniform([-0.45, -0.33], [0.45, 0.33])
                if np.linalg.norm(xy - base[:2]) > 0.2 and all(np.linalg.norm(xy - r[1][:2]) > 0.15
                                                                 for r in rest.values()):
                    break
            rest[oid] = rest_pose(oid, xy, rng.uniform(0, 2 * np.pi))
        colors = {oid: object_color(rng) for oid in meta["ycb_ids"]}
        light_dirs = [np.array([rng.normal(0, 0.5), rng.normal(0, 0.5), -1.0]) for _ in range(int(rng.integers(1, 4)))]
        light_int = [rng.uniform(2.0, 4.0)] + [rng.uniform(0.5, 2.0) for _ in light_dirs[1:]]
        seq = {"q": q, "subject": subject, "serials": serials, "right": right, "meta": meta, "shape": shape,
               "track": track, "arts": arts, "Ro": Ro, "to": to, "rots": rots, "positions": positions,
               "rest": rest, "colors": colors, "skin": skin_color(rng), "skin_rough": rng.uniform(0.45, 0.8),
               "lights": (light_dirs, light_int, float(rng.uniform(0.15, 0.4))),
               }
        self._keep_visible(seq, palm_normal, to_master)
        self._cache = {q: seq}
        return seq

    def _keep_visible(self, seq: dict, palm_normal: np.ndarray, to_master: list) -> None:
        """Draw the sequence's rotations again (from a stream of their own) while, in the master
        camera, every one of its labelled keyframes (and its last frame) hides more than
        ``MAX_HIDDEN`` of the hand (objects large enough to cover the hand from the side, or
        resting in front of it): then no sequence is hidden whole, while single frames may be."""
        q = seq["q"]
        length = self.layout(q)[1]
        checked = [f for f in sorted(set(range(0, length, KEY_EVERY)) | {length - 1}) if not self.is_invalid(q, f)]
        if not checked:  # frame 0 invalid and nothing else checked: its next frame
            checked = [f for f in range(length) if not self.is_invalid(q, f)][:1]
        if not checked:  # no hand in this sequence
            return
        view = self.view(seq["subject"], MASTER)
        rng = stream(self.seed, "dexycb", "visible", q)
        for _ in range(REDRAWS):
            if any(self._hidden_share(seq, f, view) <= MAX_HIDDEN for f in checked):
                return
            seq["rots"] = key_rotations(rng, palm_normal, to_master, ROTATION_STEP)

    def _hidden_share(self, seq: dict, f: int, view: dict) -> float:
        """The estimated share of the hand hidden in frame f as a camera (``view``) sees it (0 when
        the hand is out of view)."""
        R_ct = view["R_tc"].T
        t_ct = -R_ct @ view["C"]
        fr = self.frame_in_table(seq, f)
        bodies = [Body(fr["verts"] @ R_ct.T + t_ct, self.poser.faces[seq["right"]], seq["skin"], double_sided=True)]
        bodies += [object_body(oid, R_ct @ Ro, R_ct @ to + t_ct, seq["colors"][oid])
                   for oid, (Ro, to) in fr["objects"].items()]
        with self.timer("render"):
            occ = estimated_occlusion(bodies, view["K"], W, H)
        return 0.0 if occ is None else occ

    def frame_in_table(self, seq: dict, f: int) -> dict:
        """Frame f with a hand, in the table frame: "hand" (:meth:`hand_in_table`), "verts" (778, 3)
        and "objects" {ycb id: (R, t)} (the grasped one in the hand, the others at rest)."""
        hand = self.hand_in_table(seq, f)
        loc, R, t = hand["loc"], hand["R"], hand["t"]
        objects = dict(seq["rest"])
        objects[seq["meta"]["grasped"]] = (R @ seq["Ro"], R @ (seq["to"] - loc["J0"]) + loc["J0"] + t)
        return {"hand": hand, "verts": place(loc["vertices"], R, loc["J0"], t), "objects": objects}

    def hand_in_table(self, seq: dict, f: int) -> dict:
        """The hand of frame f in the table frame: local pose, (R, t) with X = R(X_l - J0) + J0 + t."""
        p = self.poser
        k0, k1, w = seq["track"][f]
        art = (1 - w) * seq["arts"][k0] + w * seq["arts"][k1]
        loc = p.local(seq["right"], art, seq["shape"])
        R = slerp(seq["rots"][k0], seq["rots"][k1], w)
        pos = (1 - w) * seq["positions"][k0] + w * seq["positions"][k1]
        c, _, _, _ = palm_frame(p.joints21(seq["right"], loc["vertices"], loc["joints16"], "manopth"), seq["right"])
        t = pos - (R @ (c - loc["J0"]) + loc["J0"])  # the palm's centre at pos
        return {"art": art, "loc": loc, "R": R, "t": t}

    def view(self, subject: int, serial: str) -> dict:
        """The static part of one camera's images of a subject's sequences (the same table and
        lab): table and backdrop colour (uint8), table depth, K and the camera's pose."""
        key = (subject, serial)
        if key in self._views:
            return self._views[key]
        R_tc, C = self.rig(subject)[serial]
        K = self.K(serial)
        v, u = np.mgrid[0:H, 0:W].astype(np.float64)
        rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ R_tc.T
        with np.errstate(divide="ignore", invalid="ignore"):
            s = -C[2] / rays[..., 2]
        P = C + s[..., None] * rays
        on = (s > 0) & (np.abs(P[..., 0]) < TABLE_HALF[0]) & (np.abs(P[..., 1]) < TABLE_HALF[1])
        tex = B.procedural(stream(self.seed, "dexycb", "table", subject), 256, 320).astype(np.float32)
        mx = ((P[..., 0] / TABLE_HALF[0] + 1) * 0.5 * 319).astype(np.float32)
        my = ((P[..., 1] / TABLE_HALF[1] + 1) * 0.5 * 255).astype(np.float32)
        table = _remap(tex, np.where(on, mx, 0), np.where(on, my, 0))
        shade = 0.55 + 0.45 * np.clip(-(rays / np.linalg.norm(rays, axis=-1, keepdims=True))[..., 2], 0, 1)
        backdrop = B.procedural(stream(self.seed, "dexycb", "backdrop", subject, serial), H, W).astype(np.float32)
        color = np.where(on[..., None], table * shade[..., None], backdrop)
        out = {"color": np.clip(color + 0.5, 0, 255).astype(np.uint8), "depth": np.where(on, s, 0.0).astype(np.float32),
               "K": K, "R_tc": R_tc, "C": C}
        if len(self._views) >= 16:  # a few cameras' worth; sequences come subject by subject
            self._views.pop(next(iter(self._views)))
        self._views[key] = out
        return out

    # ------------------------------------------------------------------ one frame, all cameras
    def run(self, unit: Unit) -> dict:
        """Render and write one frame as every camera of its sequence sees it."""
        from handssca.render import Light
        q, f = unit.data
        p = self.poser
        with self.timer("pose"):
            seq = self.sequence(q)
            right, meta = seq["right"], seq["meta"]
            valid = not self.is_invalid(q, f)
            ids = meta["ycb_ids"]
            poses_t = dict(seq["rest"])
            if valid:
                fr = self.frame_in_table(seq, f)
                hand, verts_t, poses_t = fr["hand"], fr["verts"], fr["objects"]
                loc, R, t = hand["loc"], hand["R"], hand["t"]
                pca = p.pca(right, hand["art"])
        samples, renders = {}, 0
        for serial in seq["serials"]:
            with self.timer("compose"):
                view = self.view(seq["subject"], serial)
            with self.timer("pose"):
                R_ct, C, K = view["R_tc"].T, view["C"], view["K"]
                t_ct = -R_ct @ C
                bodies, labels = [], []
                if valid:
                    # the hand in this camera's frame: R_c = R_ct R, t_c = R_ct (J0 + t) + t_ct - J0
                    R_c = R_ct @ R
                    t_c = R_ct @ (loc["J0"] + t) + t_ct - loc["J0"]
                    verts_c = verts_t @ R_ct.T + t_ct
                    j16_c = place(loc["joints16"], R_c, loc["J0"], t_c)
                    joint_3d = p.joints21(right, verts_c, j16_c, "manopth")
                    uv = joint_3d @ K.T
                    joint_2d = uv[:, :2] / uv[:, 2:3]
                    pose_m = np.concatenate([axis_angle(R_c), pca, t_c])[None]
                    bodies.append(Body(verts_c, p.faces[right], seq["skin"], smooth=True,
                                       roughness=seq["skin_rough"], double_sided=True))
                    labels.append(255)
                pose_y = []
                for oid in ids:
                    Ro_t, to_t = poses_t[oid]
                    Rc, tc = R_ct @ Ro_t, R_ct @ to_t + t_ct
                    pose_y.append(np.concatenate([Rc, tc[:, None]], 1))
                    bodies.append(object_body(oid, Rc, tc, seq["colors"][oid]))
                    labels.append(oid)
                dirs, ints, ambient = seq["lights"]
                light_list = [Light("directional", direction=R_ct @ d, intensity=i) for d, i in zip(dirs, ints)]
            with self.timer("render"):
                r = draw(bodies, K, W, H, light_list, ambient, hand_index=0 if valid else None)
            renders += 1
            with self.timer("compose"):
                lut = np.array([0] + labels, dtype=np.uint8)
                seg = lut[r.seg]
                rng = stream(self.seed, "dexycb", "frame", q, f, serial)
                img = B.camera_noise(rng, B.composite(r.color, r.alpha, view["color"]))
                depth = np.where(r.seg > 0, r.depth, view["depth"])
                depth_mm = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
                lab = {"seg": seg, "pose_y": np.asarray(pose_y, np.float32)}
                if valid:
                    lab.update(pose_m=pose_m.astype(np.float32), joint_3d=joint_3d[None].astype(np.float32),
                               joint_2d=joint_2d[None].astype(np.float32))
                else:  # as the real data: no annotation
                    lab.update(pose_m=np.zeros((1, 51), np.float32), joint_3d=-np.ones((1, 21, 3), np.float32),
                               joint_2d=-np.ones((1, 21, 2), np.float32))
            d = f"{self.seq_dir(q)}/{serial}"
            self.files.encoded(f"{d}/color_{f:06d}.jpg", jpeg_bytes, img, JPEG_QUALITY)
            self.files.encoded(f"{d}/aligned_depth_to_color_{f:06d}.png", png_bytes, depth_mm, mode="depth")
            self.files.encoded(f"{d}/labels_{f:06d}.npz", npz_bytes, lab)
            samples[f"{d}/color_{f:06d}.jpg"] = occlusion_record(r.seg == 1, r.amodal[0] if valid else None)
        return {"samples": samples, "renders": renders, "images": renders, "valid": valid}

    def counts(self, records: list) -> dict:
        """Images, sequences, subjects, left sequences, invalid images, images per s0 part."""
        subjects = sorted({self.plan[q][0] for q in range(len(self.plan))})
        split = {"train": 0, "val": 0, "test": 0}
        sides = {"train": set(), "val": set(), "test": set()}
        for q, (subject, trial, images) in enumerate(self.plan):
            split[s0_part(subject, trial)] += images
            sides[s0_part(subject, trial)].add("left" if self.is_left(q) else "right")
        invalid = sum(len(r["samples"]) for r in records if not r.get("valid", True))
        return {"images": self.n, "sequences": len(self.plan), "subjects": len(subjects),
                "left_sequences": sum(1 for q in range(len(self.plan)) if self.is_left(q)),
                "invalid_images": invalid, "s0_images": split,
                "s0_sides": {part: sorted(v) for part, v in sides.items()}}


def _row_major(R: np.ndarray, t: np.ndarray) -> list:
    return [round(float(x), 8) + 0.0 for x in np.concatenate([R, t[:, None]], 1).ravel()]  # + 0.0: no -0.0


def _remap(img: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    import cv2
    return cv2.remap(img, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


__all__ = ["DexYCBWriter", "sequence_plan", "toolkit_plan", "sequence_name", "s0_part", "alternating_sides",
           "SUBJECTS", "SERIALS", "MASTER", "TOOLKIT_SEQUENCES", "TOOLKIT_MIN_IMAGES"]
