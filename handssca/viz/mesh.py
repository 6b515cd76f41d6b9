"""Views of a hand mesh on its own (no photo): for the network chapter and the attention figures.

The mesh is given in MANO's canonical frame (metres; fingers along -x, palm facing -y, thumb on
+z for a right hand), as the network outputs it. A view rotates it into an OpenCV camera
(x right, y down, z forward) and frames it; drawing is :func:`handssca.render.render` (pyrender).
"""
from __future__ import annotations

import numpy as np

#: camera-from-canonical rotations: "palm" looks at the palm, fingers up; "back" at the back of
#: the hand; "side" from the thumb side.
VIEWS = {
    "palm": np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
    "back": np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
    "side": np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]),
}


def mesh_view(vertices, faces, size: int = 256, view: str = "palm", color=(0.85, 0.65, 0.55),
              background=(255, 255, 255), fill: float = 0.8) -> np.ndarray:
    """Render a hand mesh alone, framed to fill ``fill`` of a ``size`` x ``size`` image.

    Args:
        vertices: (778, 3) in MANO's canonical frame (any translation). faces: (1538, 3).
        view: a key of :data:`VIEWS`.

    Returns:
        (size, size, 3) uint8 RGB.
    """
    from handssca.render import MeshSpec, render

    if view not in VIEWS:
        raise ValueError(f"view must be one of {sorted(VIEWS)}, got {view!r}")
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {v.shape}")
    v = (v - v.mean(0)) @ VIEWS[view].T  # into the camera's axes, centred
    extent = np.abs(v[:, :2]).max() * 2 + 1e-6
    f = 2.0  # focal length in units of the image size, a narrow lens
    dist = f * extent / fill + np.abs(v[:, 2]).max()
    v[:, 2] += dist
    K = np.array([[f * size, 0, size / 2], [0, f * size, size / 2], [0, 0, 1]], dtype=np.float64)
    r = render([MeshSpec(v, np.asarray(faces), color=tuple(color))], K, size, size)
    bg = np.asarray(background, dtype=np.float32)
    a = r.alpha[..., None]
    return np.clip(r.color * a + bg * (1 - a) + 0.5, 0, 255).astype(np.uint8)
