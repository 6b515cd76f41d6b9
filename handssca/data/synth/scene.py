"""What the synthetic scenes are made of: posed hands, held objects, lights, skin tones, cameras.

Every draw takes an explicit ``numpy.random.Generator`` (see :func:`stream`), so a sample's content
depends only on (seed, style, its own index), never on the order in which samples are generated.

Hands. :class:`HandPoser` poses the hand model (``handssca.hand.load_hand_model``: the real MANO
when installed, the procedural MANO-format hand otherwise) once per pose in MANO's canonical frame
(global rotation 0, translation 0); the global rotation R and translation t are then applied as
MANO applies them, X = R (X_local - J0) + J0 + t, about the shaped root joint J0 (exact: MANO's pose
correctives do not depend on the global rotation). Articulations come from
``handssca.hand.sample_articulation`` (anatomical angles within joint limits): the plain
distribution for free hands, and for a hand that holds an object a draw conditioned on a grasp
(:func:`grasp_centres`): a closure centre set by the object's thickness (thin objects close the
hand, thick ones open it) plus a random part, and a finger-spread centre, both fixed for a
sequence (or a sample), the keyframes varying about them. Shapes come from N(0, 1) clipped to
[-2.5, 2.5]; global rotations are uniform on SO(3), except that a hand holding an object never
turns its palm straight towards the camera (:func:`palm_turned_away`), where the object would
hide it whole; a sequence that would still be hidden whole (a large object seen from the side) is
drawn again (:func:`estimated_occlusion`). A left hand (DexYCB) uses the left model and the mirror
image of a right articulation (axis-angle (a, b, c) -> (a, -b, -c)).

Objects. Boxes, cylinders, capsules and ellipsoids with the sizes of the YCB objects that DexYCB
(ids 1..21, the toolkit's table) and HO3D use, in metres, centred on their model origin. A held
object is placed against the palm: its smallest extent along the palm normal, its longest across
the palm, touching the palm's surface and shifted towards the fingers.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.spatial.transform import Rotation

STREAM_VERSION = 1

# ----------------------------------------------------------------------------- random streams


def stream(seed: int, *key) -> np.random.Generator:
    """An independent random stream for ``(seed, *key)``, e.g. ``stream(0, "freihand", "training", 12)``.

    The key is hashed (SHA-256) into the entropy of a ``SeedSequence``, so streams of different
    samples are independent and do not depend on the order they are drawn in.
    """
    text = "|".join([str(STREAM_VERSION), str(int(seed))] + [str(k) for k in key])
    digest = hashlib.sha256(text.encode()).digest()
    return np.random.default_rng(np.random.SeedSequence(list(np.frombuffer(digest, dtype=np.uint32))))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix (3, 3) uniform on SO(3) (a normalised Gaussian quaternion)."""
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    return Rotation.from_quat(q).as_matrix()


def rotation_about(axis, angle: float) -> np.ndarray:
    """Rotation (3, 3) by ``angle`` radians about a (not necessarily unit) axis."""
    a = np.asarray(axis, dtype=float)
    return Rotation.from_rotvec(a / np.linalg.norm(a) * angle).as_matrix()


def axis_angle(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (3,) axis-angle."""
    return Rotation.from_matrix(R).as_rotvec()


def matrix(aa) -> np.ndarray:
    """(3,) axis-angle -> (3, 3) rotation."""
    return Rotation.from_rotvec(np.asarray(aa, dtype=float)).as_matrix()


# ----------------------------------------------------------------------------- hands
_MIRROR_AA = np.tile([1.0, -1.0, -1.0], 15)  # right <-> left articulation, per joint (a, b, c) -> (a, -b, -c)
PALM_JOINTS = (0, 5, 9, 13, 17)  # F order: wrist, index/middle/ring/little MCP


@lru_cache(maxsize=4)
def _models(kind):
    from handssca.hand import load_hand_model
    right = load_hand_model(is_rhand=True, kind=kind)
    left = load_hand_model(is_rhand=False, kind=kind)
    return right, left


class HandPoser:
    """The hand model (right and left) posed in MANO's canonical frame (computed in float32,
    returned as float64 numpy arrays).

    Args:
        kind: None (the real MANO when installed, else the procedural hand), "mano" or
            "procedural" (``handssca.hand.load_hand_model``).
    """

    def __init__(self, kind=None):
        import torch
        from handssca.hand import HandLayer
        right, left = _models(kind)
        self.kind = right.kind
        self.source = right.source
        self.models = {True: right, False: left}
        # float32 on one thread: 20x faster than float64 for one hand, and the same bits whatever
        # the machine's thread count (the files store float32 or round to 1e-8 m anyway)
        self.layers = {side: HandLayer(m).float().eval() for side, m in self.models.items()}
        self.faces = {side: np.asarray(m.faces, dtype=np.int64) for side, m in self.models.items()}
        self.hands_mean = {side: m.hands_mean_data.double().numpy().copy() for side, m in self.models.items()}
        self.components = {side: m.hands_components_data.double().numpy().copy() for side, m in self.models.items()}
        self._torch = torch

    def tips(self, is_right: bool, convention: str) -> tuple:
        """The 5 fingertip vertex ids of a convention ("freihand", "ho3d", "manopth")."""
        return self.models[is_right].fingertip_vertices(convention)

    def local(self, is_right: bool, articulation_abs: np.ndarray, shape: np.ndarray) -> dict:
        """The hand with global rotation 0 and translation 0.

        Args:
            articulation_abs: (45,) absolute articulation (flat_hand_mean=True) of that side.
            shape: (10,) betas.

        Returns:
            dict "vertices" (778, 3), "joints16" (16, 3) (MANO order), "J0" (3,), float64 metres.
        """
        torch = self._torch
        offsets = np.asarray(articulation_abs, dtype=np.float64) - self.hands_mean[is_right]
        pose = torch.from_numpy(np.concatenate([np.zeros(3), offsets]).astype(np.float32))[None]
        beta = torch.from_numpy(np.asarray(shape, dtype=np.float32))[None]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                out = self.layers[is_right](pose, beta)
        finally:
            torch.set_num_threads(threads)
        j16 = out["joints16"][0].numpy().astype(np.float64)
        return {"vertices": out["vertices"][0].numpy().astype(np.float64), "joints16": j16, "J0": j16[0].copy()}

    def joints21(self, is_right: bool, vertices: np.ndarray, joints16: np.ndarray, convention: str) -> np.ndarray:
        """The 21 joints in F order with the fingertips of a convention: (21, 3)."""
        from handssca.hand.joints import mano_to_freihand
        return mano_to_freihand(joints16, vertices[list(self.tips(is_right, convention))])

    def offsets(self, is_right: bool, articulation_abs: np.ndarray) -> np.ndarray:
        """Absolute articulation (45,) -> offsets from hands_mean (flat_hand_mean=False)."""
        return np.asarray(articulation_abs, dtype=np.float64) - self.hands_mean[is_right]

    def pca(self, is_right: bool, articulation_abs: np.ndarray) -> np.ndarray:
        """The 45 PCA coefficients c with c @ hands_components = offsets (DexYCB's pose_m[3:48])."""
        C = self.components[is_right]
        return np.linalg.solve(C.T, self.offsets(is_right, articulation_abs))


def place(points: np.ndarray, R: np.ndarray, J0: np.ndarray, t: np.ndarray) -> np.ndarray:
    """MANO's global transform of canonical points: R (X - J0) + J0 + t. points (N, 3)."""
    return (points - J0) @ R.T + J0 + t


def sample_articulation(rng: np.random.Generator, is_right: bool = True, closure=None,
                        spread=None) -> np.ndarray:
    """One articulation (45,), absolute axis-angle (flat_hand_mean=True), of the given side.

    Args:
        closure, spread: None (the plain distribution) or a grasp's centres (:func:`grasp_centres`;
            ``handssca.hand.pose_space.sample_angles`` draws about them).
    """
    from handssca.hand import sample_articulation as _sample
    art = _sample(1, rng, closure=closure, spread=spread)[0]
    return art if is_right else art * _MIRROR_AA


#: closure centre of a grasp = clip(a - b x thickness, lo, hi), thickness the object's smallest
#: extent (metres), the one it is held across (:func:`grasp_pose`): 1.2 cm scissors -> 0.70,
#: 6 cm boxes -> 0.48, the 14 cm pitcher -> 0.15
GRASP_CLOSURE = (0.75, 4.5, 0.15, 0.75)
#: per-grasp randomness: sd of the closure centre about the object's, sd of the spread centre
GRASP_SD = (0.12, 0.8)


def grasp_centres(rng: np.random.Generator, ycb_id: int) -> tuple[float, float]:
    """The centres (closure c, spread m) of one grasp of an object (a sequence's, or a sample's).

    c = clip(closure_of(thickness) + 0.12 N, 0.05, 0.9) (:data:`GRASP_CLOSURE`), m = 0.8 N; the
    hand's keyframes are then drawn about them (``sample_angles``: g = c + 0.1 N, s = m + 0.6 N),
    so that over many grasps g and s spread about as the plain distribution's (sd 0.21 and 1).
    """
    a, b, lo, hi = GRASP_CLOSURE
    thickness = float(object_extents(ycb_id).min())
    centre = float(np.clip(a - b * thickness, lo, hi))
    return float(np.clip(centre + GRASP_SD[0] * rng.standard_normal(), 0.05, 0.9)), \
        float(GRASP_SD[1] * rng.standard_normal())


#: a hand holding an object keeps its palm more than this angle (degrees) away from the direction
#: towards the camera (the object against the palm would otherwise stand straight between them)
PALM_AWAY_DEG = 30.0


def palm_turned_away(R: np.ndarray, palm_normal: np.ndarray, to_camera: np.ndarray,
                     min_angle_deg: float = PALM_AWAY_DEG) -> bool:
    """Whether the palm, rotated by R (3, 3), faces away from the camera by more than
    ``min_angle_deg``: angle(R palm_normal, to_camera) > min_angle_deg (both (3,), any length)."""
    n = R @ (palm_normal / np.linalg.norm(palm_normal))
    d = np.asarray(to_camera, dtype=float) / np.linalg.norm(to_camera)
    return float(n @ d) < float(np.cos(np.radians(min_angle_deg)))


def key_rotations(rng: np.random.Generator, palm_normal: np.ndarray, to_camera: list,
                  step: tuple = (0.1, 0.45), tries: int = 200) -> list:
    """Keyframe global rotations (3, 3) of a hand that holds an object against its palm.

    The first is uniform on SO(3), each next one the previous turned by an angle in ``step``
    (radians) about a random axis; each is redrawn until :func:`palm_turned_away` holds for its
    keyframe's direction towards the camera (after ``tries`` draws the last one is kept: a
    bounded loop; the cone excluded is 7 % of the directions, so this does not happen in practice).

    Args:
        palm_normal: (3,) the palmar normal of the unrotated hand (:func:`palm_frame`).
        to_camera: per keyframe, (3,) the direction from the hand towards the camera, in the frame
            the rotations map into.
    """
    rots = []
    for d in to_camera:
        prev = rots[-1] if rots else None
        for _ in range(tries):
            if prev is None:
                R = random_rotation(rng)
            else:
                R = rotation_about(rng.standard_normal(3), rng.uniform(*step)) @ prev
            if palm_turned_away(R, palm_normal, d):
                break
        rots.append(R)
    return rots


#: at least one of a sequence's keyframes (or its last frame) hides at most this share of the
#: hand (estimated at 1/4 size, :func:`estimated_occlusion`, which is within 0.015 of the full-size
#: share); otherwise the sequence's rotations are drawn again
MAX_HIDDEN = 0.9
#: how many times a sequence's rotations are drawn again at most
REDRAWS = 20


def estimated_occlusion(bodies: list, K: np.ndarray, width: int, height: int, scale: float = 0.25):
    """The share of the hand (``bodies[0]``) hidden by the other bodies, from a rendering at
    ``scale`` times the image size (segmentation only; a few milliseconds).

    Returns:
        1 - visible / amodal hand pixels, or None when the hand falls outside the image.
    """
    from handssca.render import MeshSpec, render
    # OpenCV pixel centres: u' = s (u + 1/2) - 1/2
    Ks = np.array([[scale * K[0, 0], 0.0, scale * (K[0, 2] + 0.5) - 0.5],
                   [0.0, scale * K[1, 1], scale * (K[1, 2] + 0.5) - 0.5], [0.0, 0.0, 1.0]])
    specs = [MeshSpec(b.vertices, b.faces, color=b.color, double_sided=b.double_sided) for b in bodies]
    r = render(specs, Ks, max(1, int(round(width * scale))), max(1, int(round(height * scale))), amodal=[0])
    amodal = r.amodal[0] if r.amodal is not None else (r.seg == 1)
    hand = int(amodal.sum())
    return None if hand == 0 else 1.0 - int(((r.seg == 1) & amodal).sum()) / hand


def sample_shape(rng: np.random.Generator, sigma: float = 1.0) -> np.ndarray:
    """Betas (10,) from N(0, sigma^2), clipped to [-2.5, 2.5]."""
    return np.clip(sigma * rng.standard_normal(10), -2.5, 2.5)


def palm_frame(joints21: np.ndarray, is_right: bool) -> tuple:
    """The palm's centre (3,), its outward normal on the palmar side (3,), the direction from the
    wrist to the fingers (3,) and across the palm from the little finger to the index (3,), from
    F-order joints in any frame."""
    c = joints21[list(PALM_JOINTS)].mean(0)
    fingers = joints21[9] - joints21[0]
    fingers /= np.linalg.norm(fingers)
    across = joints21[5] - joints21[17]
    across -= fingers * (across @ fingers)
    across /= np.linalg.norm(across)
    # right hand (fingers -x, thumb +z, palm -y): fingers x across = (-x) x (+z) = +y is the back
    n = np.cross(fingers, across)
    n = -n if is_right else n
    return c, n / np.linalg.norm(n), fingers, across


# ----------------------------------------------------------------------------- objects
@dataclass(frozen=True)
class ObjectShape:
    """A YCB object approximated by a primitive: kind in box/cylinder/capsule/ellipsoid, dims in
    metres (box: extents x, y, z; cylinder and capsule: radius, height along z; ellipsoid: radii)."""

    name: str
    kind: str
    dims: tuple


#: DexYCB's object table (ids 1..21 as in the toolkit), with primitive stand-ins of YCB sizes.
YCB_OBJECTS = {
    1: ObjectShape("002_master_chef_can", "cylinder", (0.051, 0.139)),
    2: ObjectShape("003_cracker_box", "box", (0.060, 0.158, 0.210)),
    3: ObjectShape("004_sugar_box", "box", (0.038, 0.089, 0.175)),
    4: ObjectShape("005_tomato_soup_can", "cylinder", (0.033, 0.101)),
    5: ObjectShape("006_mustard_bottle", "box", (0.058, 0.095, 0.190)),
    6: ObjectShape("007_tuna_fish_can", "cylinder", (0.043, 0.033)),
    7: ObjectShape("008_pudding_box", "box", (0.035, 0.089, 0.110)),
    8: ObjectShape("009_gelatin_box", "box", (0.028, 0.073, 0.089)),
    9: ObjectShape("010_potted_meat_can", "box", (0.051, 0.083, 0.101)),
    10: ObjectShape("011_banana", "capsule", (0.018, 0.160)),
    11: ObjectShape("019_pitcher_base", "cylinder", (0.070, 0.240)),
    12: ObjectShape("021_bleach_cleanser", "box", (0.065, 0.100, 0.250)),
    13: ObjectShape("024_bowl", "ellipsoid", (0.080, 0.080, 0.040)),
    14: ObjectShape("025_mug", "cylinder", (0.040, 0.082)),
    15: ObjectShape("035_power_drill", "box", (0.060, 0.180, 0.190)),
    16: ObjectShape("036_wood_block", "box", (0.085, 0.085, 0.200)),
    17: ObjectShape("037_scissors", "box", (0.012, 0.090, 0.200)),
    18: ObjectShape("040_large_marker", "capsule", (0.009, 0.120)),
    19: ObjectShape("051_large_clamp", "box", (0.035, 0.090, 0.120)),
    20: ObjectShape("052_extra_large_clamp", "box", (0.035, 0.120, 0.165)),
    21: ObjectShape("061_foam_brick", "box", (0.050, 0.050, 0.075)),
}
#: the YCB objects of HO3D (DexYCB ids)
HO3D_OBJECT_IDS = (2, 3, 5, 9, 10, 11, 12, 14, 15, 17)
#: small objects occasionally held in the FreiHAND style
SMALL_OBJECT_IDS = (4, 6, 8, 10, 14, 18, 21)


@lru_cache(maxsize=64)
def object_mesh(ycb_id: int) -> tuple:
    """(vertices (V, 3), faces (F, 3), smooth) of an object's stand-in mesh, in its model frame."""
    import trimesh
    o = YCB_OBJECTS[ycb_id]
    if o.kind == "box":
        m = trimesh.creation.box(extents=o.dims)
        smooth = False
    elif o.kind == "cylinder":
        m = trimesh.creation.cylinder(radius=o.dims[0], height=o.dims[1], sections=32)
        smooth = False
    elif o.kind == "capsule":
        m = trimesh.creation.capsule(height=o.dims[1] - 2 * o.dims[0], radius=o.dims[0], count=[24, 12])
        smooth = True
    elif o.kind == "ellipsoid":
        m = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
        m.apply_scale(o.dims)
        smooth = True
    else:  # pragma: no cover - the table above is fixed
        raise ValueError(o.kind)
    v = np.ascontiguousarray(m.vertices, dtype=np.float64)
    f = np.ascontiguousarray(m.faces, dtype=np.int64)
    v.setflags(write=False)
    f.setflags(write=False)
    return v, f, smooth


def object_extents(ycb_id: int) -> np.ndarray:
    """Full extents (3,) of an object's mesh along its model axes (metres)."""
    v, _, _ = object_mesh(ycb_id)
    return v.max(0) - v.min(0)


def object_corners(ycb_id: int) -> np.ndarray:
    """The 8 corners (8, 3) of the object's axis-aligned box in its model frame, in the order
    x, y, z bits (corner k has x = max if k & 4, y = max if k & 2, z = max if k & 1)."""
    v, _, _ = object_mesh(ycb_id)
    lo, hi = v.min(0), v.max(0)
    return np.array([[hi[0] if k & 4 else lo[0], hi[1] if k & 2 else lo[1], hi[2] if k & 1 else lo[2]]
                     for k in range(8)])


def grasp_pose(ycb_id: int, joints21_local: np.ndarray, is_right: bool, rng: np.random.Generator) -> tuple:
    """An object pose (R (3, 3), t (3,)) in the hand's canonical frame, held against the palm.

    The object's smallest extent points along the palm normal, its largest across the palm (turned
    by up to +-35 degrees about the normal and tilted by up to 15 degrees), its surface touches
    the palm 8-12 mm in front of the palm joints' centre, shifted 0-25 mm towards the fingers and,
    for objects longer than 12 cm, along their longest side so that the palm stays within 6 cm of
    its end.
    """
    c, n, fingers, across = palm_frame(joints21_local, is_right)
    ext = object_extents(ycb_id)
    order = np.argsort(ext)               # smallest, middle, largest model axes
    target = [n, np.cross(across, n), across]  # smallest -> normal, middle -> ~fingers, largest -> across
    R0 = np.zeros((3, 3))
    for k, axis in enumerate(order):
        R0[:, axis] = target[k]
    if np.linalg.det(R0) < 0:
        R0[:, order[1]] *= -1
    R = rotation_about(n, rng.uniform(-0.6, 0.6)) @ rotation_about(across, rng.uniform(-0.26, 0.26)) @ R0
    half = 0.5 * float(np.sum(ext * np.abs(R.T @ n)))  # the object's half-width along n
    # large objects are held off-centre, along their longest side
    long_axis = R[:, order[2]] * ext[order[2]]
    t = (c + n * (half + rng.uniform(0.008, 0.012)) + fingers * rng.uniform(0.0, 0.025)
         + long_axis * rng.uniform(-1, 1) * max(0.0, 0.5 - 0.06 / ext[order[2]]))
    return R, t


# ----------------------------------------------------------------------------- appearance
#: skin tones (linear-ish RGB 0..1), light to dark
SKIN_TONES = np.array([
    (0.96, 0.80, 0.69), (0.93, 0.75, 0.62), (0.87, 0.66, 0.52), (0.78, 0.56, 0.41),
    (0.66, 0.45, 0.31), (0.52, 0.34, 0.23), (0.38, 0.25, 0.17), (0.29, 0.19, 0.13),
])


def skin_color(rng: np.random.Generator) -> np.ndarray:
    """An RGBA skin colour: one of SKIN_TONES with a small jitter."""
    base = SKIN_TONES[rng.integers(len(SKIN_TONES))]
    return np.r_[np.clip(base * rng.uniform(0.92, 1.08) + rng.normal(0, 0.02, 3), 0.02, 1.0), 1.0]


def object_color(rng: np.random.Generator) -> np.ndarray:
    """An RGBA colour for an object: saturated or neutral, like packaging and tools."""
    if rng.random() < 0.25:
        g = rng.uniform(0.1, 0.9)
        c = np.array([g, g, g]) + rng.normal(0, 0.03, 3)
    else:
        import colorsys
        c = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.4, 1.0), rng.uniform(0.3, 1.0)))
    return np.r_[np.clip(c, 0, 1), 1.0]


def lights(rng: np.random.Generator):
    """1-3 directional lights roughly from the camera's side, tinted, and an ambient level.

    Returns:
        (list of handssca.render.Light, ambient float).
    """
    from handssca.render import Light
    out = []
    for k in range(int(rng.integers(1, 4))):
        d = np.array([rng.normal(0, 0.6), rng.normal(0.3, 0.6), 1.0 if k == 0 else rng.uniform(-0.3, 1.0)])
        tint = np.clip(1.0 + rng.normal(0, 0.06, 3), 0.8, 1.0)
        out.append(Light("directional", direction=d, color=tint,
                         intensity=float(rng.uniform(1.5, 3.5) if k == 0 else rng.uniform(0.3, 1.5))))
    return out, float(rng.uniform(0.1, 0.35))


# ----------------------------------------------------------------------------- cameras
def pinhole(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """K (3, 3)."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def place_in_view(points_rot: np.ndarray, K: np.ndarray, uv: np.ndarray, depth: float) -> np.ndarray:
    """The translation t that puts the centre of the bounding box of ``points_rot`` (N, 3) at depth
    ``depth`` on the ray of pixel ``uv``."""
    centre = 0.5 * (points_rot.min(0) + points_rot.max(0))
    ray = np.linalg.solve(K, np.array([uv[0], uv[1], 1.0]))
    return ray * depth - centre


def look_at(position: np.ndarray, target: np.ndarray, down: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation (3, 3) (columns: camera x right, y down, z forward) of a camera at
    ``position`` looking at ``target``, with ``down`` the world direction that should point down."""
    z = target - position
    z = z / np.linalg.norm(z)
    x = np.cross(down, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], 1)


# ----------------------------------------------------------------------------- trajectories
def smooth_track(rng: np.random.Generator, n_frames: int, key_every: int = 12):
    """Interpolation weights for smooth motion: keyframe ids (k,) and, per frame, (k0, k1, w) with a
    smoothstep weight, so that frames move continuously between random keyframes."""
    n_keys = max(2, int(np.ceil(max(n_frames - 1, 1) / key_every)) + 1)
    out = []
    for f in range(n_frames):
        s = f / key_every
        k0 = min(int(np.floor(s)), n_keys - 2)
        w = s - k0
        out.append((k0, k0 + 1, float(w * w * (3 - 2 * w))))
    return n_keys, out


def slerp(R0: np.ndarray, R1: np.ndarray, w: float) -> np.ndarray:
    """Spherical interpolation between two rotations, w in [0, 1]."""
    rel = axis_angle(R0.T @ R1)
    return R0 @ matrix(rel * w)


# ----------------------------------------------------------------------------- drawing
@dataclass
class Body:
    """A mesh placed in a camera frame (OpenCV, metres): vertices (V, 3), faces, colour, shading."""

    vertices: np.ndarray
    faces: np.ndarray
    color: np.ndarray
    smooth: bool = True
    roughness: float = 0.7
    double_sided: bool = False  # True for the hand: MANO's mesh is open at the wrist


def object_body(ycb_id: int, R: np.ndarray, t: np.ndarray, color: np.ndarray) -> Body:
    """An object's stand-in mesh posed by X = R p + t."""
    v, f, smooth = object_mesh(ycb_id)
    return Body(v @ R.T + t, f, color, smooth=smooth, roughness=0.5)


def draw(bodies: list, K: np.ndarray, width: int, height: int, light_list, ambient: float, hand_index=0):
    """Render bodies with the cached renderer of that size; the hand (``hand_index``, or None when
    the image has no hand) is also drawn alone for its occlusion.

    Returns:
        a ``handssca.render.Rendering`` (``seg`` labels = body index + 1).
    """
    from handssca.render import MeshSpec, render
    specs = [MeshSpec(b.vertices, b.faces, color=b.color, smooth=b.smooth, roughness=b.roughness,
                      double_sided=b.double_sided) for b in bodies]
    amodal = [hand_index] if (hand_index is not None and len(bodies) > 1) else False
    r = render(specs, K, width, height, lights=light_list, ambient=ambient, amodal=amodal)
    if hand_index is not None and r.amodal is None:
        r.amodal = [r.seg == hand_index + 1]
    return r
