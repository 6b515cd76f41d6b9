"""The headless renderer: pinhole projection in the OpenCV convention, labels, depth, amodal
masks, cropping, overlays and input checks."""
import numpy as np
import pytest
import trimesh

from handssca.data.geometry import project
from handssca.render import MeshSpec, overlay_mesh, render


def _square(x0, y0, x1, y1, z):
    """A flat square facing the camera (OpenCV frame), two triangles."""
    v = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)
    return MeshSpec(v, np.array([[0, 1, 2], [0, 2, 3]]), smooth=False)


@pytest.mark.parametrize("K", [
    np.array([[300.0, 0, 140.3], [0, 320.0, 100.7], [0, 0, 1]]),
    np.array([[500.0, 0, 96.6], [0, 480.0, 121.2], [0, 0, 1]]),
], ids=["K1", "K2"])
def test_a_known_cube_projects_where_K_says(K):
    W, H = 256, 200
    box = trimesh.creation.box((0.05, 0.05, 0.05))
    centre = np.array([0.02, -0.01, 0.6])
    r = render([MeshSpec(box.vertices + centre, box.faces, smooth=False)], K, W, H, crop=False)
    # the camera sees only the front face (z = 0.575): its corners project to this rectangle
    front = np.array([[-0.005, -0.035, 0.575], [0.045, 0.015, 0.575]])
    (u0, v0), (u1, v1) = project(front, K)
    ys, xs = np.nonzero(r.seg == 1)
    # pixel (i, j) is drawn iff its centre (u = j, v = i) is inside the projection
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (np.ceil(u0), np.floor(u1), np.ceil(v0), np.floor(v1))
    c = project(centre[None] - [0, 0, 0.025], K)[0]
    assert abs(r.depth[int(round(c[1])), int(round(c[0]))] - 0.575) < 1e-4
    assert r.depth[r.seg == 0].max() == 0.0 and r.alpha[r.seg == 0].max() < 1.0
    assert r.color.shape == (H, W, 3) and r.color.dtype == np.uint8


def test_nearer_meshes_hide_farther_ones_and_amodal_masks_do_not():
    K = np.array([[400.0, 0, 160.0], [0, 400.0, 120.0], [0, 0, 1]])
    back = _square(-0.05, -0.05, 0.05, 0.05, 0.8)
    ball = trimesh.creation.icosphere(3, 0.02)
    front = MeshSpec(ball.vertices + [0.0, 0.0, 0.5], ball.faces, color=(1, 0, 0))
    r = render([back, front], K, 320, 240, amodal=True)
    assert set(np.unique(r.seg)) == {0, 1, 2}
    assert r.amodal[0].sum() > (r.seg == 1).sum()           # the ball hides part of the square
    assert np.array_equal(r.amodal[1], r.seg == 2)           # nothing hides the ball
    assert np.all(r.amodal[0][r.seg == 2])                   # the square continues behind it
    assert abs(r.depth[120, 160] - (0.5 - 0.02)) < 2e-3      # the ball's front
    assert r.color[120, 160, 0] > 2 * max(r.color[120, 160, 1], r.color[120, 160, 2])


def test_cropped_rendering_equals_the_full_frame():
    K = np.array([[600.0, 0, 320.3], [0, 610.0, 240.8], [0, 0, 1]])
    box = trimesh.creation.box((0.05, 0.05, 0.05))
    ball = trimesh.creation.icosphere(3, 0.03)
    meshes = [MeshSpec(box.vertices + [0.12, -0.01, 0.6], box.faces, smooth=False),
              MeshSpec(ball.vertices + [0.02, -0.05, 0.5], ball.faces)]
    a = render(meshes, K, 640, 480, amodal=True)
    b = render(meshes, K, 640, 480, amodal=True, crop=False)
    assert np.array_equal(a.seg, b.seg) and np.array_equal(a.alpha, b.alpha)
    assert np.abs(a.depth - b.depth).max() < 1e-4
    assert np.abs(a.color.astype(int) - b.color).max() <= 2
    assert all(np.array_equal(x, y) for x, y in zip(a.amodal, b.amodal))
    # a mesh wholly outside the image draws nothing
    out = render([MeshSpec(box.vertices + [5.0, 0, 0.6], box.faces)], K, 640, 480)
    assert out.seg.max() == 0 and out.alpha.max() == 0


def test_overlay_draws_only_where_the_mesh_is():
    K = np.array([[200.0, 0, 64.0], [0, 200.0, 48.0], [0, 0, 1]])
    img = np.full((96, 128, 3), 40, np.uint8)
    out = overlay_mesh(img, *(lambda s: (s.vertices, s.faces))(_square(-0.02, -0.02, 0.02, 0.02, 0.5)), K)
    changed = np.any(out != img, axis=2)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert changed[48, 64] and not changed[5, 5]
    u = project(np.array([[-0.02, -0.02, 0.5], [0.02, 0.02, 0.5]]), K)
    ys, xs = np.nonzero(changed)
    assert xs.min() >= np.floor(u[0, 0]) and xs.max() <= np.ceil(u[1, 0])


def test_bad_inputs_raise_clear_errors():
    sq = _square(-0.02, -0.02, 0.02, 0.02, 0.5)
    with pytest.raises(ValueError, match="K must be"):
        render([sq], np.eye(2), 64, 64)
    with pytest.raises(ValueError, match="face ids"):
        render([MeshSpec(sq.vertices, np.array([[0, 1, 7]]))], np.diag([100.0, 100.0, 1.0]), 64, 64)
    with pytest.raises(ValueError, match="at least one mesh"):
        render([], np.diag([100.0, 100.0, 1.0]), 64, 64)
    with pytest.raises(ValueError, match="opacity"):
        overlay_mesh(np.zeros((8, 8, 3), np.uint8), sq.vertices, sq.faces, np.diag([10.0, 10.0, 1.0]), opacity=2)


def test_triton_installed_beside_mesa_does_not_crash_training_after_a_render():
    """Triton's LLVM loaded after Mesa's software OpenGL killed the process (a segmentation
    fault when torch first imported Triton, e.g. building Adam after the synthetic data were
    rendered); the renderer loads Triton first. Run in a fresh process: the order of the
    libraries is the point."""
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("triton") is None:
        if os.environ.get("HANDSSCA_REQUIRE_TRITON") == "1":
            pytest.fail("HANDSSCA_REQUIRE_TRITON=1 but triton is not installed")
        pytest.skip("triton is not installed: the crash needs it")
    code = ("import numpy as np, torch\n"
            "from handssca.render import MeshSpec, render\n"
            "v = np.array([[-.1, -.1, 1], [.1, -.1, 1], [0, .1, 1]])\n"
            "K = np.array([[100., 0, 32], [0, 100., 32], [0, 0, 1]])\n"
            "r = render([MeshSpec(v, np.array([[0, 1, 2]]))], K, 64, 64)\n"
            "assert r.seg.any()\n"
            "torch.optim.Adam(torch.nn.Linear(2, 2).parameters())\n"
            "print('trained after a render')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    assert "trained after a render" in res.stdout
