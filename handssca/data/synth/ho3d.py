"""Synthetic hand-object sequences written as HO3D v2 or v3 (book/datasets_and_metrics.md,
section HO-3D).

Layout (``version`` "v2": PNG colour frames, "v3": JPEG)::

    train/<SEQ>/rgb/<FID>.png|.jpg      640 x 480 colour
    train/<SEQ>/depth/<FID>.png         depth in two 8-bit channels (below)
    train/<SEQ>/seg/<FID>.png           segmentation (below)
    train/<SEQ>/meta/<FID>.pkl          annotations (pickle, protocol 2; read with encoding="latin1")
    evaluation/<SEQ>/{rgb,depth,seg,meta}/<FID>.*
    train.txt, evaluation.txt           "SEQ/FID" lines, sorted by sequence then frame
    evaluation_xyz.json                 the evaluation ground truth as HO3D released it (2024):
    evaluation_verts.json               per line of evaluation.txt, in its order, the 21 joints
                                        (H order) and the 778 vertices, OpenGL frame, metres
    models/<objName>/textured_simple.obj   the objects (HO3D takes them from the YCB download)
    synth_info.json                     not in HO3D (see handssca.data.synth)

Conventions (as the real files): metres; every 3D quantity in the **OpenGL** camera frame (the
hand at z < 0; OpenCV = diag(1, -1, -1) OpenGL); right hands only; joints in the **H order**
(MANO's 16 joints, then the tips T, I, M, R, P) with HO3D's fingertip vertices
(744, 333, 444, 555, 672). Depth: d = (R + 256 G) x 0.00012498664727900177 m, i.e. OpenCV's
``img[..., 2] + 256 * img[..., 1]`` (B = 0).

``meta/<FID>.pkl`` of a train frame, a dict (arrays float32)::

    handPose (48,)       global rotation (axis-angle, OpenGL frame) + 45 *absolute* articulation
                         values (flat_hand_mean=True: hands_mean already added)
    handBeta (10,)       betas
    handTrans (3,)       MANO translation in the OpenGL frame: vertices = MANO(handPose, handBeta)
                         + handTrans, MANO rotating about the shaped root joint J0
    handJoints3D (21, 3) joints, OpenGL, H order, HO3D fingertips
    camMat (3, 3)        intrinsics (applied to OpenCV coordinates, i.e. after flipping y and z)
    objRot (3,)          object rotation, axis-angle (cv2.Rodrigues), OpenGL frame
    objTrans (3,)        object translation, OpenGL frame: X = R(objRot) p + objTrans for model points p
    objName (str)        YCB name, e.g. "006_mustard_bottle"
    objLabel (int)       the object's id in the DexYCB/YCB-Video table (1..21)
    objCorners3DRest (8, 3)  corners of the model's bounding box, model frame
    objCorners3D (8, 3)  the same corners posed, OpenGL frame

An evaluation frame's pickle has ``handJoints3D`` of shape (3,) (the wrist only, OpenGL),
``handBoundingBox`` (4,) [x_min, y_min, x_max, y_max] in pixels (the projected hand vertices,
clipped to the image), ``camMat`` and the object keys; it has no ``handPose``, ``handBeta``,
``handTrans`` keys (use ``meta.get``).

Decisions where the real format leaves room:

- Sequences: ``SYT###`` (train) and ``SYE###`` (evaluation), frame ids ``%04d`` from 0000. ``n``
  frames are spread over Q = clip(round(n / 50), 2, n) sequences of n // Q or n // Q + 1 frames
  (about 50 frames each); the last max(1, round(Q x 13 / 68)) sequences (HO3D v2's 13 of 68)
  are the evaluation split. So n >= 2.
- A sequence keeps its camera (f_x = f_y about 614 px, principal point near (312, 241)), hand
  shape, object, skin tone, lights and background, and its frames move smoothly (the hand's pose,
  rotation and position interpolate between random keyframes every 12 frames; the object stays
  fixed in the hand).
- Grasps differ by object and sequence: the keyframe articulations are drawn about the
  sequence's own grasp (a closure set by the object's thickness plus randomness, and a finger
  spread; ``scene.grasp_centres``), and the hand never turns its palm, with the object against
  it, straight towards the camera (within 30 degrees; ``scene.key_rotations``); a sequence whose
  keyframes and last frame all hide more than 90 % of the hand (a large object seen from the
  side; estimated from quarter-size renderings, within 0.015 of the full-size share) draws its
  rotations again. So no sequence is hidden whole, while single frames may be.
- ``evaluation_xyz.json`` / ``evaluation_verts.json``: compact JSON lists, values rounded to
  8 decimals (10 nm); the evaluation pickles' wrist (``handJoints3D``, float32) is the same
  point to float32 precision.
- ``seg/<FID>.png`` (the HO-3D toolkit's ``read_seg`` reads a ``segr`` folder in some
  releases; we write ``seg``):
  640 x 480, 3 channels, read with OpenCV: channel 0 (blue) 255 on visible hand pixels, channel 1
  (green) 255 on visible object pixels, channel 2 = 0.
- Depth behind the hand and object is a plane (a wall 0.8-1.6 m away, tilted), 0 where there is
  none.
- Annotations are computed with the hand model recorded in ``synth_info.json`` ("hand_model").
"""
from __future__ import annotations

import numpy as np

from . import backgrounds as B
from .common import Unit, jpeg_bytes, occlusion_record, pickle_bytes, png_bytes, rounded
from .engine import StyleWriter, write_json_lists
from .scene import (HO3D_OBJECT_IDS, MAX_HIDDEN, REDRAWS, YCB_OBJECTS, Body, axis_angle, draw,
                    estimated_occlusion, grasp_centres, grasp_pose, key_rotations, lights, object_body, object_color,
                    object_corners, object_mesh, palm_frame, pinhole, place, place_in_view, sample_articulation,
                    sample_shape, skin_color, slerp, smooth_track, stream)

W, H = 640, 480
DEPTH_SCALE = 0.00012498664727900177
FRAMES_PER_SEQUENCE = 50
KEY_EVERY = 12
ROTATION_STEP = (0.1, 0.45)  # radians between keyframes
JPEG_QUALITY = 92
GL = np.diag([1.0, -1.0, -1.0])  # OpenCV <-> OpenGL (its own inverse)
HO3D_FROM_F = (0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3, 4, 8, 12, 16, 20)


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """Depth (H, W) metres -> (H, W, 3) uint8 in OpenCV's BGR order: B = 0, G = high byte,
    R = low byte of round(d / DEPTH_SCALE) (HO3D's read_depth_img inverts this)."""
    q = np.clip(np.round(depth_m / DEPTH_SCALE), 0, 65535).astype(np.uint16)
    out = np.zeros(depth_m.shape + (3,), np.uint8)
    out[..., 1] = (q >> 8).astype(np.uint8)
    out[..., 2] = (q & 255).astype(np.uint8)
    return out


def sequence_plan(n: int, frames_per_sequence: int = None) -> tuple:
    """(train sequence lengths, evaluation sequence lengths) for n frames (see the docstring);
    ``frames_per_sequence`` replaces the 50 frames a sequence holds on average."""
    if n < 2:
        raise ValueError(f"synth ho3d: n must be at least 2 (a train and an evaluation frame), got {n}")
    fps = FRAMES_PER_SEQUENCE if frames_per_sequence is None else int(frames_per_sequence)
    if fps < 1:
        raise ValueError(f"synth ho3d: frames_per_sequence must be a positive integer, got {fps}")
    q = int(np.clip(round(n / fps), 2, n))
    lengths = [n // q + (1 if k < n % q else 0) for k in range(q)]
    q_eval = max(1, int(round(q * 13 / 68)))
    return lengths[: q - q_eval], lengths[q - q_eval:]


class HO3DWriter(StyleWriter):
    """HO3D's layout (module docstring); a work unit is one frame."""

    style = "ho3d"

    def __init__(self, out, n, seed, poser, timer, version="v2", frames_per_sequence=None, **_):
        super().__init__(out, n, seed, poser, timer)
        if version not in ("v2", "v3"):
            raise ValueError(f"synth ho3d: version must be 'v2' or 'v3', got {version!r}")
        self.version = version
        self.ext = "png" if version == "v2" else "jpg"
        self.frames_per_sequence = frames_per_sequence
        train, evaluation = sequence_plan(self.n, frames_per_sequence)
        self.sequences = ([("train", f"SYT{k:03d}", L) for k, L in enumerate(train)]
                          + [("evaluation", f"SYE{k:03d}", L) for k, L in enumerate(evaluation)])
        self._seq_cache = {}

    def options(self) -> dict:
        """{"version": "v2" | "v3"} (+ "frames_per_sequence" when not the default)."""
        opts = {"version": self.version}
        if self.frames_per_sequence is not None:
            opts["frames_per_sequence"] = int(self.frames_per_sequence)
        return opts

    def units(self) -> list:
        """One unit per frame, sequence by sequence (train first)."""
        return [Unit(f"{split}/{name}/{f:04d}", (q, f)) for q, (split, name, L) in enumerate(self.sequences)
                for f in range(L)]

    def write_static(self) -> None:
        """The object models used by the sequences."""
        from .common import obj_text
        for oid in sorted({self.object_of(q) for q in range(len(self.sequences))}):
            v, f, _ = object_mesh(oid)
            name = YCB_OBJECTS[oid].name
            self.files.text(f"models/{name}/textured_simple.obj", obj_text(v, f, name))

    # ------------------------------------------------------------------ sequences
    def object_of(self, q: int) -> int:
        """The YCB id of the object held in sequence q (a stream of its own)."""
        rng = stream(self.seed, "ho3d", "object", q)
        return int(HO3D_OBJECT_IDS[rng.integers(len(HO3D_OBJECT_IDS))])

    def sequence(self, q: int) -> dict:
        """The fixed part of sequence q and its keyframes (cached per process)."""
        if q in self._seq_cache:
            return self._seq_cache[q]
        split, name, L = self.sequences[q]
        rng = stream(self.seed, "ho3d", "sequence", q)
        p = self.poser
        K = pinhole(*(rng.uniform(605, 625),) * 2, rng.uniform(305, 320), rng.uniform(235, 248))
        shape = sample_shape(rng)
        oid = self.object_of(q)
        n_keys, track = smooth_track(rng, L, KEY_EVERY)
        closure, spread = grasp_centres(rng, oid)  # this sequence's grasp
        arts = [sample_articulation(rng, True, closure, spread) for _ in range(n_keys)]
        # the object's pose in the hand, from the first keyframe's hand
        loc0 = p.local(True, arts[0], shape)
        j21 = p.joints21(True, loc0["vertices"], loc0["joints16"], "ho3d")
        Ro, to = grasp_pose(oid, j21, True, rng)
        uv0 = np.array([rng.uniform(0.35, 0.65) * W, rng.uniform(0.35, 0.65) * H])
        uvs = [uv0 + rng.normal(0, 25, 2) for _ in range(n_keys)]
        depths = [rng.uniform(0.45, 0.75) for _ in range(n_keys)]
        # the palm (and the object against it) never faces the camera: towards the camera is
        # minus the ray of the hand's pixel
        to_camera = [-np.linalg.solve(K, np.array([u, v, 1.0])) for u, v in uvs]
        palm_normal = palm_frame(j21, True)[1]
        rots = key_rotations(rng, palm_normal, to_camera, ROTATION_STEP)
        wall_n = np.array([rng.normal(0, 0.2), rng.normal(0, 0.2), -1.0])
        seq = {
            "split": split, "name": name, "K": K, "shape": shape, "object": oid, "track": track, "arts": arts,
            "Ro": Ro, "to": to, "rots": rots, "uvs": uvs, "depths": depths,
            "skin": skin_color(rng), "skin_rough": rng.uniform(0.45, 0.8), "obj_color": object_color(rng),
            "lights": lights(rng), "bg_seed": int(rng.integers(2 ** 31)),
            "wall": (wall_n / np.linalg.norm(wall_n), np.array([0.0, 0.0, rng.uniform(0.8, 1.6)])),
        }
        self._keep_visible(q, seq, palm_normal, to_camera)
        self._seq_cache = {q: seq}  # frames are generated sequence by sequence
        return seq

    def _keep_visible(self, q: int, seq: dict, palm_normal: np.ndarray, to_camera: list) -> None:
        """Draw the sequence's rotations again (from a stream of their own) while every one of its
        keyframes (and its last frame) hides more than ``MAX_HIDDEN`` of the hand: then
        no sequence is hidden whole, even by an object large enough to cover the hand from the
        side, while single frames may be."""
        rng = stream(self.seed, "ho3d", "visible", q)
        length = len(seq["track"])
        checked = sorted(set(range(0, length, KEY_EVERY)) | {length - 1})
        for _ in range(REDRAWS):
            if any(self._hidden_share(seq, f) <= MAX_HIDDEN for f in checked):
                return
            seq["rots"] = key_rotations(rng, palm_normal, to_camera, ROTATION_STEP)

    def _hidden_share(self, seq: dict, f: int) -> float:
        """The estimated share of the hand the object hides in frame f (0 when it is out of view)."""
        fr = self.pose(seq, f)
        bodies = [Body(fr["verts"], self.poser.faces[True], seq["skin"], double_sided=True),
                  object_body(seq["object"], fr["R_obj"], fr["t_obj"], seq["obj_color"])]
        with self.timer("render"):
            occ = estimated_occlusion(bodies, seq["K"], W, H)
        return 0.0 if occ is None else occ

    def frame(self, q: int, f: int) -> dict:
        """Hand and object of frame f of sequence q, in the OpenCV camera frame."""
        return self.pose(self.sequence(q), f)

    def pose(self, seq: dict, f: int) -> dict:
        """Hand and object of frame f of a sequence (:meth:`sequence`), OpenCV camera frame."""
        p = self.poser
        k0, k1, w = seq["track"][f]
        art = (1 - w) * seq["arts"][k0] + w * seq["arts"][k1]
        loc = p.local(True, art, seq["shape"])
        R = slerp(seq["rots"][k0], seq["rots"][k1], w)
        uv = (1 - w) * seq["uvs"][k0] + w * seq["uvs"][k1]
        depth = (1 - w) * seq["depths"][k0] + w * seq["depths"][k1]
        rot = place(loc["vertices"], R, loc["J0"], np.zeros(3))
        t = place_in_view(rot, seq["K"], uv, depth)
        verts = rot + t
        j16 = place(loc["joints16"], R, loc["J0"], t)
        R_obj = R @ seq["Ro"]
        t_obj = R @ (seq["to"] - loc["J0"]) + loc["J0"] + t
        return {"art": art, "R": R, "t": t, "verts": verts, "j16": j16, "J0": loc["J0"], "R_obj": R_obj,
                "t_obj": t_obj}

    # ------------------------------------------------------------------ one frame
    def run(self, unit: Unit) -> dict:
        """Render and write one frame: colour, depth, segmentation, meta."""
        q, f = unit.data
        p = self.poser
        with self.timer("pose"):
            seq = self.sequence(q)
            fr = self.frame(q, f)
            K = seq["K"]
            j21 = p.joints21(True, fr["verts"], fr["j16"], "ho3d")
            bodies = [Body(fr["verts"], p.faces[True], seq["skin"], smooth=True, roughness=seq["skin_rough"],
                           double_sided=True),
                      object_body(seq["object"], fr["R_obj"], fr["t_obj"], seq["obj_color"])]
        with self.timer("render"):
            r = draw(bodies, K, W, H, *seq["lights"])
        visible_hand, visible_obj = r.seg == 1, r.seg == 2
        rng = stream(self.seed, "ho3d", "frame", q, f)
        with self.timer("compose"):
            if "background" not in seq:  # the camera is static: one background per sequence
                seq["background"] = B.procedural(stream(self.seed, "ho3d", "background", seq["bg_seed"]), H, W)
                seq["wall_depth"] = B.plane_depth(K, H, W, *seq["wall"])
            bg, wall = seq["background"], seq["wall_depth"]
            img = B.camera_noise(rng, B.composite(r.color, r.alpha, bg))
            depth = np.where(r.seg > 0, r.depth, wall)
            seg = np.zeros((H, W, 3), np.uint8)
            seg[..., 0] = np.where(visible_hand, 255, 0)
            seg[..., 1] = np.where(visible_obj, 255, 0)
            meta = self.meta(seq, fr, j21)
        split, name = seq["split"], seq["name"]
        base = f"{split}/{name}"
        fid = f"{f:04d}"
        if self.ext == "png":
            self.files.encoded(f"{base}/rgb/{fid}.png", png_bytes, img)
        else:
            self.files.encoded(f"{base}/rgb/{fid}.jpg", jpeg_bytes, img, JPEG_QUALITY)
        self.files.encoded(f"{base}/depth/{fid}.png", png_bytes, encode_depth(depth), rgb=False, mode="depth")
        self.files.encoded(f"{base}/seg/{fid}.png", png_bytes, seg, rgb=False, mode="labels")
        self.files.encoded(f"{base}/meta/{fid}.pkl", pickle_bytes, meta)
        occ = occlusion_record(visible_hand, r.amodal[0])
        record = {"samples": {f"{base}/rgb/{fid}.{self.ext}": occ}, "renders": 1, "images": 1}
        if split == "evaluation":  # the released ground truth's row (OpenGL, H order)
            record["annotation"] = {"xyz": rounded(j21[list(HO3D_FROM_F)] @ GL, 8),
                                    "verts": rounded(fr["verts"] @ GL, 8)}
        return record

    def meta(self, seq: dict, fr: dict, j21_cv: np.ndarray) -> dict:
        """The pickle's dict (module docstring), in the OpenGL frame."""
        # MANO's parameters in the OpenGL frame X' = A X (A = diag(1, -1, -1)): the hand is
        # R (X - J0) + J0 + t, so R' = A R and t' = A (J0 + t) - J0 (book/datasets_and_metrics.md,
        # section OpenGL and OpenCV frames)
        go_gl = axis_angle(GL @ fr["R"])
        t_gl = GL @ (fr["J0"] + fr["t"]) - fr["J0"]
        corners_rest = object_corners(seq["object"])
        R_gl = GL @ fr["R_obj"]
        t_gl_obj = GL @ fr["t_obj"]
        f32 = np.float32
        meta = {"camMat": seq["K"].astype(f32),
                "objRot": axis_angle(R_gl).astype(f32), "objTrans": t_gl_obj.astype(f32),
                "objName": YCB_OBJECTS[seq["object"]].name, "objLabel": int(seq["object"]),
                "objCorners3DRest": corners_rest.astype(f32),
                "objCorners3D": (corners_rest @ R_gl.T + t_gl_obj).astype(f32)}
        joints_gl = j21_cv[list(HO3D_FROM_F)] @ GL
        if seq["split"] == "train":
            hand = {"handPose": np.concatenate([go_gl, fr["art"]]).astype(f32),
                    "handBeta": seq["shape"].astype(f32), "handTrans": t_gl.astype(f32),
                    "handJoints3D": joints_gl.astype(f32)}
        else:
            uv = fr["verts"] @ seq["K"].T
            uv = uv[:, :2] / uv[:, 2:3]
            box = np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
            box = np.clip(box, 0, [W - 1, H - 1, W - 1, H - 1])
            hand = {"handJoints3D": joints_gl[0].astype(f32), "handBoundingBox": box.astype(f32)}
        return {**hand, **meta}

    def finish(self, records: list, load) -> None:
        """``train.txt``, ``evaluation.txt``, and the evaluation ground truth in its order."""
        lines = {"train": [], "evaluation": []}
        for split, name, L in self.sequences:
            lines[split] += [f"{name}/{f:04d}" for f in range(L)]
        for split in ("train", "evaluation"):
            self.files.text(f"{split}.txt", "".join(line + "\n" for line in lines[split]))
        # units run train first, then evaluation, sequence by sequence and frame by frame: the
        # order of evaluation.txt
        first = len(lines["train"])
        with self.timer("write"):
            write_json_lists({"xyz": self.out / "evaluation_xyz.json", "verts": self.out / "evaluation_verts.json"},
                             (load(i)["annotation"] for i in range(first, first + len(lines["evaluation"]))),
                             self.files.manifest)

    def counts(self, records: list) -> dict:
        """Sequences and frames per split."""
        tr = [s for s in self.sequences if s[0] == "train"]
        ev = [s for s in self.sequences if s[0] == "evaluation"]
        return {"train_sequences": len(tr), "train_frames": sum(s[2] for s in tr),
                "evaluation_sequences": len(ev), "evaluation_frames": sum(s[2] for s in ev)}


__all__ = ["HO3DWriter", "encode_depth", "sequence_plan", "DEPTH_SCALE"]
