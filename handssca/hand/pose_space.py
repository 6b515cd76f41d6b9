"""A plausible distribution of finger poses, its PCA, and named poses, for the procedural hand.

MANO learnt its pose space (``hands_mean`` and 45 PCA ``hands_components``) from scans of real
hands. The procedural hand has no scans, so its pose space comes from the distribution below,
written in anatomical angles and converted to MANO's axis-angle pose vector. The same sampler
gives the synthetic data its poses.

Pose vector (as MANO's, flat_hand_mean=True): 15 axis-angle triplets in the canonical frame, in
MANO's joint order (index 1-3, middle 1-3, little 1-3, ring 1-3, thumb 1-3). Each joint rotates
the bone that starts at it, relative to its parent, about axes fixed in the flat hand:

- finger flexion about the finger's flexion axis, close to +z (positive curls towards the palm);
- finger abduction at the MCP about the back-of-hand normal +y (positive spreads towards the thumb);
- thumb flexion (CMC, MCP, IP) about the thumb's flexion axis, about (0.76, -0.41, 0.51);
- thumb opposition at the CMC about +x (positive brings the thumb in front of the palm),
  thumb adduction at the CMC about -y (positive moves it towards the index finger), and thumb
  pronation about its own axis (positive turns its pad towards the fingers).

The distribution (angles in degrees, N = standard normal, all draws independent):

- closure g ~ Beta(2, 2.6), shared by the whole hand (0 open, 1 fist; mean 0.43);
- finger k (index, middle, ring, little): curl c = clip(g + b_k + 0.12 N, -0.1, 1) with
  b = (-0.06, 0, 0.03, 0.07) (the little finger curls first: a flexion synergy);
  MCP = clip(80 c + 6 N, -20, 90), PIP = clip(100 c + 6 N, 0, 110),
  DIP = clip(0.65 PIP + 5 N, -5, 80) (the DIP follows the PIP: tendon coupling);
  MCP abduction = clip(s a_k (1 - 0.8 max(c, 0)) + 3 N, -20, 25) with a shared spread s ~ N(0, 1)
  and a = (8, 1.5, -6, -11) (the fingers fan out together and less when curled);
- thumb: opposition o = clip(0.6 g + 0.2 + 0.2 N, 0, 1), thumb closure h = clip(g + 0.15 N, 0, 1);
  CMC opposition = 70 o - 10, CMC adduction = clip(25 h - 5 + 6 N, -20, 35), CMC pronation = 25 o,
  CMC flexion = clip(15 h + 5 N, -10, 40), MCP = clip(10 + 40 h + 6 N, -10, 70),
  IP = clip(5 + 60 h + 8 N, -15, 85).

Each joint's rotation is R = R_abduction R_flexion (flexion first, in the joint's own frame); the
CMC is R_opposition R_adduction R_pronation R_flexion.

Conditioned draws (the synthetic data's grasps): :func:`sample_angles` and
:func:`sample_articulation` take an optional closure centre c and spread centre m; then
g = clip(c + sigma_g N, 0, 1) replaces the Beta draw and s = m + sigma_s N the standard normal
one (sigma_g = 0.1, sigma_s = 0.6 by default), and everything else is drawn as above. A caller
whose centres c spread with an sd of about 0.18 (g's is 0.21) and m ~ N(0, 0.8^2) keeps the
marginal spread of every angle close to the plain distribution's, while the hands drawn about one
centre (one grasp, one sequence) resemble each other.

``hands_mean`` is the mean of 8192 plain samples (seed 0) in axis-angle, a relaxed, slightly
curled hand as MANO's; ``hands_components`` are the principal axes of the samples (rows,
orthonormal, by decreasing variance).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.spatial.transform import Rotation

from .procedural import DIGIT_JOINTS, FINGERS, _finger_frame, _rot, _thumb_frame

N_SAMPLES = 8192
SEED = 0
_CURL_BIAS = (-0.06, 0.0, 0.03, 0.07)
_SPREAD = (8.0, 1.5, -6.0, -11.0)


@lru_cache(maxsize=1)
def joint_axes() -> dict:
    """The anatomical axes (unit, canonical frame) used to write poses.

    Returns:
        dict with, per finger, "flex" (3,) and "abd" (3,); for the thumb, "flex", "opp", "add",
        "axial".
    """
    axes = {}
    for k, name in enumerate(FINGERS):
        d, n, _ = _finger_frame(k)
        axes[name] = {"flex": np.cross(n, d), "abd": n}
    t, n = _thumb_frame()
    # the sign of the axial axis: a positive turn moves the pad (-n) towards the fingers (-x, -z)
    toward = np.array([-1.0, 0.0, -1.0])
    axial = t if (_rot(t, 0.1) @ -n) @ toward > (-n) @ toward else -t
    axes["thumb"] = {"flex": np.cross(n, t), "opp": np.array([1.0, 0.0, 0.0]),
                     "add": np.array([0.0, -1.0, 0.0]), "axial": axial}
    return axes


def _rot_batch(axis: np.ndarray, deg) -> np.ndarray:
    """Rotations (n, 3, 3) about a fixed unit axis by angles in degrees (n,)."""
    return Rotation.from_rotvec(np.radians(np.atleast_1d(deg))[:, None] * axis[None]).as_matrix()


def articulation_from_angles(angles: dict) -> np.ndarray:
    """Anatomical angles (degrees) -> MANO's 45 articulation values (absolute axis-angle).

    Args:
        angles: per finger name a dict with "mcp", "pip", "dip" and optionally "abd"; for
            "thumb": "opp", "add", "pron", "cmc", "mcp", "ip" (missing entries are 0). Values are
            numbers or arrays of n angles.

    Returns:
        (45,) for numbers, (n, 45) for arrays: flat_hand_mean=True articulation (the pose theta
        without the global rotation), MANO joint order.
    """
    sizes = [np.size(v) for part in angles.values() for v in part.values()]
    n = max(sizes, default=1)
    ax = joint_axes()
    out = np.zeros((n, 16, 3))

    def get(part, key):
        return np.broadcast_to(np.asarray(angles.get(part, {}).get(key, 0.0), dtype=float), (n,))

    for name in FINGERS:
        j1, j2, j3 = DIGIT_JOINTS[name]
        fl, ab = ax[name]["flex"], ax[name]["abd"]
        R = _rot_batch(ab, get(name, "abd")) @ _rot_batch(fl, get(name, "mcp"))
        out[:, j1] = Rotation.from_matrix(R).as_rotvec()
        out[:, j2] = np.radians(get(name, "pip"))[:, None] * fl
        out[:, j3] = np.radians(get(name, "dip"))[:, None] * fl
    t = ax["thumb"]
    R = (_rot_batch(t["opp"], get("thumb", "opp")) @ _rot_batch(t["add"], get("thumb", "add"))
         @ _rot_batch(t["axial"], get("thumb", "pron")) @ _rot_batch(t["flex"], get("thumb", "cmc")))
    out[:, 13] = Rotation.from_matrix(R).as_rotvec()
    out[:, 14] = np.radians(get("thumb", "mcp"))[:, None] * t["flex"]
    out[:, 15] = np.radians(get("thumb", "ip"))[:, None] * t["flex"]
    scalar = all(np.ndim(v) == 0 for part in angles.values() for v in part.values())
    res = out[:, 1:].reshape(n, 45)
    return res[0] if scalar else res


#: noise of a conditioned draw about its closure centre and its spread centre (module docstring)
CLOSURE_SD = 0.1
SPREAD_SD = 0.6


def _centre(value, n: int, name: str) -> np.ndarray:
    """A conditioning centre (number or (n,) array) as a finite (n,) float array."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != n) or not np.all(np.isfinite(arr)):
        raise ValueError(f"sample_angles: {name} must be a finite number or an array of {n} values, "
                         f"got shape {arr.shape}")
    return np.broadcast_to(arr, (n,))


def sample_angles(n: int, rng: np.random.Generator, closure=None, spread=None,
                  closure_sd: float = CLOSURE_SD, spread_sd: float = SPREAD_SD) -> dict:
    """n draws of the anatomical angles (degrees) from the distribution of the module docstring.

    Args:
        n: number of draws. rng: a numpy Generator.
        closure: None (g ~ Beta(2, 2.6), the plain distribution) or the centre c in [0, 1] of the
            whole-hand closure, a number or (n,): g = clip(c + closure_sd N, 0, 1).
        spread: None (s ~ N(0, 1)) or the centre m of the shared finger spread, a number or (n,):
            s = m + spread_sd N.

    Returns:
        the dict layout of :func:`articulation_from_angles`, each value an array (n,).
    """
    # the plain branch draws exactly as before (hands_mean and the PCA are computed from it)
    if closure is None:
        g = rng.beta(2.0, 2.6, n)
    else:
        g = np.clip(_centre(closure, n, "closure") + closure_sd * rng.standard_normal(n), 0.0, 1.0)
    if spread is None:
        s = rng.standard_normal(n)
    else:
        s = _centre(spread, n, "spread") + spread_sd * rng.standard_normal(n)
    z = rng.standard_normal((n, 4, 5))  # per finger: curl, MCP, PIP, DIP, abduction
    pose = {}
    for k, name in enumerate(FINGERS):
        c = np.clip(g + _CURL_BIAS[k] + 0.12 * z[:, k, 0], -0.1, 1.0)
        pip = np.clip(100 * c + 6 * z[:, k, 2], 0, 110)
        pose[name] = {
            "mcp": np.clip(80 * c + 6 * z[:, k, 1], -20, 90),
            "pip": pip,
            "dip": np.clip(0.65 * pip + 5 * z[:, k, 3], -5, 80),
            "abd": np.clip(s * _SPREAD[k] * (1 - 0.8 * np.maximum(c, 0.0)) + 3 * z[:, k, 4], -20, 25),
        }
    zt = rng.standard_normal((n, 6))  # thumb: opposition, closure, CMC add/flex, MCP, IP
    o = np.clip(0.6 * g + 0.2 + 0.2 * zt[:, 0], 0, 1)
    h = np.clip(g + 0.15 * zt[:, 1], 0, 1)
    pose["thumb"] = {
        "opp": 70 * o - 10, "add": np.clip(25 * h - 5 + 6 * zt[:, 2], -20, 35), "pron": 25 * o,
        "cmc": np.clip(15 * h + 5 * zt[:, 3], -10, 40),
        "mcp": np.clip(10 + 40 * h + 6 * zt[:, 4], -10, 70),
        "ip": np.clip(5 + 60 * h + 8 * zt[:, 5], -15, 85),
    }
    return pose


def sample_articulation(n: int, rng: np.random.Generator | int | None = None, closure=None,
                        spread=None) -> np.ndarray:
    """n articulations (n, 45), absolute axis-angle (flat_hand_mean=True), from the distribution.

    Args:
        n: number of samples.
        rng: a numpy Generator or a seed.
        closure, spread: None (the plain distribution) or the centres of a conditioned draw
            (:func:`sample_angles`).
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if n == 0:
        return np.zeros((0, 45))
    return articulation_from_angles(sample_angles(n, rng, closure, spread)).reshape(n, 45)


@lru_cache(maxsize=1)
def pose_pca() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """hands_mean (45,), hands_components (45, 45) (orthonormal rows) and their variances (45,).

    Computed from N_SAMPLES draws with seed SEED; the sign of each component is fixed so that its
    largest entry is positive (deterministic).
    """
    X = sample_articulation(N_SAMPLES, np.random.default_rng(SEED))
    mean = X.mean(0)
    _, s, Vt = np.linalg.svd(X - mean, full_matrices=False)
    sign = np.sign(Vt[np.arange(45), np.abs(Vt).argmax(1)])
    Vt = Vt * sign[:, None]
    return mean, Vt, s ** 2 / (len(X) - 1)


#: Named poses in anatomical angles (degrees); "flat" is the zero pose and "relaxed" hands_mean.
NAMED_POSES = {
    "fist": {**{f: {"mcp": 85, "pip": 100, "dip": 65} for f in FINGERS},
             "thumb": {"opp": 45, "add": 20, "pron": 15, "cmc": 20, "mcp": 45, "ip": 55}},
    "point": {"index": {"mcp": 0, "pip": 0, "dip": 0},
              **{f: {"mcp": 85, "pip": 100, "dip": 65} for f in ("middle", "ring", "pinky")},
              "thumb": {"opp": 40, "add": 20, "pron": 15, "cmc": 20, "mcp": 45, "ip": 50}},
    "spread": {"index": {"abd": 18}, "middle": {"abd": 3}, "ring": {"abd": -12}, "pinky": {"abd": -22},
               "thumb": {"add": -15}},
    "grasp": {**{f: {"mcp": 50, "pip": 60, "dip": 35} for f in FINGERS},
              "thumb": {"opp": 55, "add": 10, "pron": 20, "cmc": 10, "mcp": 20, "ip": 25}},
    # thumb and index fingertips 1 cm apart (angles fitted once by minimising that distance)
    "pinch": {"index": {"mcp": 37, "pip": 63, "dip": 39},
              "middle": {"mcp": 30, "pip": 40, "dip": 25}, "ring": {"mcp": 35, "pip": 45, "dip": 30},
              "pinky": {"mcp": 40, "pip": 50, "dip": 30},
              "thumb": {"opp": 50, "add": 4, "pron": 33, "cmc": 9, "mcp": 12, "ip": 12}},
}


def named_pose(name: str) -> np.ndarray:
    """A named articulation (45,), absolute axis-angle: "flat", "relaxed", or a NAMED_POSES key."""
    if name == "flat":
        return np.zeros(45)
    if name == "relaxed":
        return pose_pca()[0].copy()
    if name not in NAMED_POSES:
        raise ValueError(f"named_pose: expected 'flat', 'relaxed' or one of {sorted(NAMED_POSES)}, got {name!r}")
    return articulation_from_angles(NAMED_POSES[name])
