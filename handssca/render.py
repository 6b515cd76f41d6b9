"""A small headless renderer: meshes seen through a pinhole camera K, as colour, depth and masks.

Used by the synthetic data generator (:mod:`handssca.data.synth`), by ``predict`` (a mesh drawn
over an image, :func:`overlay_mesh`) and by the book's figures. Depends on numpy, trimesh and
pyrender, and on the package's one pinhole projection (:func:`handssca.data.geometry.project`,
numpy only).

Conventions
-----------
- Everything is given in the **OpenCV camera frame**: x right, y down, z forward (depth > 0),
  metres; a point X projects to the pixel ``(K X)[:2] / (K X)[2]`` with the pixel-centre
  convention of OpenCV (pixel (i, j) is centred on u = j, v = i). pyrender's camera looks down
  -z with y up and puts pixel centres at half-integers, so the renderer flips y and z of the
  vertices (and light directions) and shifts the principal point by half a pixel; callers never
  see either.
- ``Rendering.depth`` is the z coordinate (not the ray length) of the nearest surface, metres,
  0 where nothing was drawn; ``Rendering.seg`` labels each pixel with the index + 1 of the mesh
  seen there (0: background); ``Rendering.amodal[i]`` is the silhouette of mesh i drawn alone
  (what a mask of that mesh would be without the others in front of it).

Platform
--------
pyrender draws through PyOpenGL, whose platform is fixed when it is first imported: this module
sets ``PYOPENGL_PLATFORM=egl`` (headless, no display needed) unless the user has set the variable
(``osmesa`` is the other headless choice, or call :func:`set_platform` before the first render).
The EGL platform cannot survive deleting one renderer while another exists (the display is
shared), so renderers are cached, one per (width, height), and only released all together
(:func:`release_renderers`).

Speed (a software OpenGL, Mesa's llvmpipe, draws here): :func:`render` draws only the crop of the
image the meshes can cover (exactly the same pixels), and the depth buffer is read back only by
the pass that needs it (pyrender 0.1.45's readback is replaced on our renderers for that; with
another pyrender, its own readback is used).
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from handssca.data.geometry import project

PLATFORM_ENV = "PYOPENGL_PLATFORM"
PLATFORMS = ("egl", "osmesa")
DEFAULT_PLATFORM = "egl"

# OpenCV camera frame -> OpenGL camera frame (and back): flip y and z.
_CV_TO_GL = np.array([1.0, -1.0, -1.0])

_lock = threading.RLock()
_renderers: dict = {}


# ----------------------------------------------------------------------------- platform
def gl_platform() -> str:
    """The PyOpenGL platform in use or to be used: ``$PYOPENGL_PLATFORM``, else "egl"."""
    return os.environ.get(PLATFORM_ENV, "") or DEFAULT_PLATFORM


def set_platform(name: str) -> None:
    """Choose the headless platform ("egl" or "osmesa") before the first render.

    Raises:
        ValueError: an unknown platform.
        RuntimeError: pyrender was already imported with another platform (PyOpenGL fixes its
            platform at import; restart the process with ``PYOPENGL_PLATFORM`` set instead).
    """
    if name not in PLATFORMS:
        raise ValueError(f"set_platform: expected one of {PLATFORMS}, got {name!r}")
    if "pyrender" in sys.modules or "OpenGL.platform" in sys.modules:
        current = os.environ.get(PLATFORM_ENV, "")
        if current != name:
            raise RuntimeError(f"set_platform({name!r}): PyOpenGL was already imported with platform "
                               f"{current or 'default'!r}; set {PLATFORM_ENV}={name} before starting Python")
        return
    os.environ[PLATFORM_ENV] = name


def _default_platform() -> None:
    """Set ``PYOPENGL_PLATFORM=egl`` unless the user chose one or PyOpenGL is already loaded."""
    if not os.environ.get(PLATFORM_ENV) and "OpenGL" not in sys.modules and "pyrender" not in sys.modules:
        os.environ[PLATFORM_ENV] = DEFAULT_PLATFORM


# as early as possible: importing this module before pyrender is enough for a headless context
_default_platform()


def _pyrender():
    """Import pyrender with a headless platform (sets ``PYOPENGL_PLATFORM`` if unset)."""
    _default_platform()
    platform = os.environ.get(PLATFORM_ENV, "")
    if not platform:
        raise RuntimeError(f"pyrender/PyOpenGL were imported before handssca.render without {PLATFORM_ENV}: "
                           f"they would need a display. Set {PLATFORM_ENV}=egl (or osmesa) before importing "
                           f"them, or import handssca.render first")
    if platform not in PLATFORMS:
        raise RuntimeError(f"{PLATFORM_ENV}={platform!r} is not a headless platform; use one of {PLATFORMS}")
    _load_triton_first()
    import pyrender
    return pyrender


def _load_triton_first() -> None:
    """Import Triton, where it is installed, before the first OpenGL context.

    Triton bundles its own LLVM; Mesa's software OpenGL (llvmpipe) loads the system's. When
    Triton's native library is loaded after Mesa's (torch imports Triton lazily, e.g. when an
    optimiser is built), the process dies with a segmentation fault; loaded first, both live
    side by side. Deferred and optional: Triton is a GPU extra, absent on most CPU machines.
    """
    import importlib.util

    if "triton" not in sys.modules and importlib.util.find_spec("triton") is not None:
        try:
            import triton  # noqa: F401  (loaded for its native library; see above)
        except Exception:  # a broken Triton is the GPU path's concern, not the renderer's
            pass


# ----------------------------------------------------------------------------- inputs
@dataclass
class MeshSpec:
    """One mesh to draw, in the OpenCV camera frame.

    Attributes:
        vertices: (V, 3) metres.
        faces: (F, 3) vertex ids, counter-clockwise seen from outside.
        color: RGBA (or RGB) in 0..1, the base colour of the material.
        vertex_colors: optional (V, 3) or (V, 4) colours in 0..1 (or uint8), multiplied with it.
        smooth: smooth (per-vertex normal) shading; False for flat faces (boxes).
        double_sided: draw back faces too (the MANO mesh is open at the wrist).
        roughness, metallic: the physically based material's parameters.
    """

    vertices: np.ndarray
    faces: np.ndarray
    color: Sequence[float] = (0.8, 0.8, 0.8, 1.0)
    vertex_colors: Optional[np.ndarray] = None
    smooth: bool = True
    double_sided: bool = True
    roughness: float = 0.7
    metallic: float = 0.0


@dataclass
class Light:
    """A light, in the OpenCV camera frame.

    Attributes:
        kind: "directional" (``direction``: where the light travels, e.g. (0, 0, 1) shines along
            the optical axis, from the camera) or "point" (``position``, metres).
        color: RGB in 0..1. intensity: pyrender's units (directional ~1-5; point ~ W at 1 m).
    """

    kind: str = "directional"
    direction: Sequence[float] = (0.0, 0.0, 1.0)
    position: Sequence[float] = (0.0, 0.0, 0.0)
    color: Sequence[float] = (1.0, 1.0, 1.0)
    intensity: float = 3.0


@dataclass
class Rendering:
    """What :meth:`Renderer.render` returns (H x W images).

    Attributes:
        color: (H, W, 3) uint8 RGB over ``bg_color`` (edge pixels blended by their coverage: with
            the default black background, the colour is premultiplied by ``alpha``).
        alpha: (H, W) float32 coverage in 0..1 (anti-aliased edges), for compositing over an image.
        depth: (H, W) float32, z of the nearest surface in metres (OpenCV frame), 0 = nothing.
        seg: (H, W) uint8 (uint16 beyond 254 meshes): 0 background, i + 1 where mesh i is seen.
        amodal: list (one entry per mesh) of (H, W) bool silhouettes of the mesh drawn alone, None
            for the meshes not asked for; None when none was asked for.
    """

    color: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray
    seg: np.ndarray
    amodal: Optional[list] = field(default=None)

    def mask(self, i: int) -> np.ndarray:
        """(H, W) bool: where mesh i is the visible surface."""
        return self.seg == (i + 1)


def _as_spec(m, i: int) -> MeshSpec:
    if isinstance(m, MeshSpec):
        spec = m
    elif isinstance(m, (tuple, list)) and len(m) in (2, 3):
        spec = MeshSpec(np.asarray(m[0]), np.asarray(m[1]), *(() if len(m) == 2 else (m[2],)))
    elif hasattr(m, "vertices") and hasattr(m, "faces"):  # a trimesh.Trimesh
        vc = None
        visual = getattr(m, "visual", None)
        if visual is not None and getattr(visual, "kind", None) == "vertex":
            vc = np.asarray(visual.vertex_colors)
        spec = MeshSpec(np.asarray(m.vertices), np.asarray(m.faces), vertex_colors=vc)
    else:
        raise ValueError(f"render: mesh {i} must be a MeshSpec, a trimesh.Trimesh or a tuple "
                         f"(vertices (V, 3), faces (F, 3)[, rgba]), got {type(m).__name__}")
    v = np.asarray(spec.vertices, dtype=np.float64)
    f = np.asarray(spec.faces)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"render: mesh {i}: vertices must be (V, 3) with V > 0, got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"render: mesh {i}: faces must be an integer array (F, 3), got {f.shape} {f.dtype}")
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"render: mesh {i}: face ids must be in 0..{len(v) - 1}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"render: mesh {i}: vertices hold NaN or inf")
    return spec


def check_intrinsics(K) -> np.ndarray:
    """K as a (3, 3) float64 pinhole matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (skew ignored)."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 \
            or not np.allclose(K[2], [0, 0, 1]):
        raise ValueError(f"K must be a (3, 3) pinhole matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with "
                         f"fx, fy > 0, got {np.array2string(K, precision=3)}")
    return K


# ----------------------------------------------------------------------------- the renderer
class Renderer:
    """One off-screen pyrender context of a fixed size (use :func:`get_renderer` to share them).

    Args:
        width, height: the image size in pixels.
    """

    def __init__(self, width: int, height: int):
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"Renderer: width and height must be positive, got {width} x {height}")
        self.width, self.height = int(width), int(height)
        pyrender = _pyrender()
        try:
            self._r = pyrender.OffscreenRenderer(self.width, self.height)
        except Exception as e:  # pragma: no cover - depends on the machine's OpenGL
            raise RuntimeError(
                f"could not create a headless OpenGL context with {PLATFORM_ENV}={gl_platform()!r} "
                f"({type(e).__name__}: {e}); install Mesa's EGL (libegl1) or OSMesa (libosmesa6) and set "
                f"{PLATFORM_ENV}=egl or osmesa") from e
        self._fast = _install_fast_readback(self._r)

    def _pass(self, scene, flags, want_depth: bool, seg_node_map=None):
        """One pyrender pass; the depth buffer is read back only when asked (it costs as much as
        the drawing on a software renderer)."""
        if self._fast:
            self._r._renderer._handssca_want_depth = want_depth
        return self._r.render(scene, flags, seg_node_map=seg_node_map)

    def render(self, meshes, K, *, lights: Optional[Sequence[Light]] = None, ambient: float = 0.3,
               bg_color=(0, 0, 0), amodal=False, znear: float = 0.01, zfar: float = 20.0,
               color: bool = True) -> Rendering:
        """Draw the meshes as a pinhole camera with intrinsics K sees them.

        Args:
            meshes: a list of :class:`MeshSpec`, ``trimesh.Trimesh`` or (vertices, faces[, rgba]),
                in the OpenCV camera frame (metres).
            K: (3, 3) intrinsics, OpenCV convention.
            lights: a list of :class:`Light`; default one light from the camera.
            ambient: ambient light level (0..1, grey).
            bg_color: RGB (0..255) behind the meshes in ``color``.
            amodal: True, or a list of mesh indices: also draw those meshes alone (one pass each)
                for ``Rendering.amodal``.
            znear, zfar: clipping depths (metres).
            color: False draws depth and masks only (faster).

        Returns:
            a :class:`Rendering`: one anti-aliased colour pass, one segmentation pass (labels and
            depth, sampled at pixel centres) and, with ``amodal``, one segmentation pass per mesh.
        """
        K = check_intrinsics(K)
        specs = [_as_spec(m, i) for i, m in enumerate(meshes)]
        if not specs:
            raise ValueError("render: expected at least one mesh")
        pyrender = _pyrender()
        H, W = self.height, self.width
        scene = pyrender.Scene(bg_color=np.r_[np.asarray(bg_color, float)[:3] / 255.0, 0.0],
                               ambient_light=np.full(3, float(ambient)))
        # the half-pixel shift: pyrender centres pixel j on x = j + 0.5, OpenCV on u = j
        cam = pyrender.IntrinsicsCamera(fx=K[0, 0], fy=K[1, 1], cx=K[0, 2] + 0.5, cy=K[1, 2] + 0.5,
                                        znear=znear, zfar=zfar)
        # pyrender keeps nodes in sets and draws meshes and sums lights in set order; nodes hashed
        # by their creation index (not their memory address) make that order, and so the bits
        # of the image, the same in every run
        node_cls = _ordered_node_class(pyrender)
        scene.add_node(node_cls(0, camera=cam, matrix=np.eye(4)))
        nodes = []
        for spec in specs:
            nodes.append(node_cls(len(nodes) + 1, mesh=self._pyrender_mesh(pyrender, spec), matrix=np.eye(4)))
            scene.add_node(nodes[-1])
        for k, light in enumerate(lights if lights is not None else [Light()]):
            obj, pose = self._pyrender_light(pyrender, light)
            scene.add_node(node_cls(len(nodes) + 1 + k, light=obj, matrix=pose))
        flags = pyrender.RenderFlags
        # Labels and depth come from a segmentation pass: pyrender draws it without multisampling,
        # so every pixel is sampled exactly at its centre (the colour pass is 4x multisampled and
        # its depth is one of the four samples, up to 0.4 px off the centre).
        seg_map = {node: _label_color(i + 1) for i, node in enumerate(nodes)}
        with _lock:
            if color:
                rgba, _ = self._pass(scene, flags.RGBA, False)
                rgba = np.asarray(rgba)
                col, alpha = rgba[..., :3].copy(), rgba[..., 3].astype(np.float32) / 255.0
            seg_rgb, depth = self._pass(scene, flags.SEG, True, seg_node_map=seg_map)
            seg = _decode_labels(np.asarray(seg_rgb), len(nodes))
            depth = np.where(seg > 0, np.asarray(depth, dtype=np.float32), 0.0).astype(np.float32)
            masks = None
            if amodal is not False and amodal is not None:
                which = range(len(nodes)) if amodal is True else [int(i) for i in amodal]
                masks = [None] * len(nodes)
                for i in which:
                    if not 0 <= i < len(nodes):
                        raise ValueError(f"render: amodal index {i} out of range for {len(nodes)} meshes")
                    node = nodes[i]
                    alone, _ = self._pass(scene, flags.SEG, False, seg_node_map={node: seg_map[node]})
                    masks[i] = _decode_labels(np.asarray(alone), len(nodes)) > 0
        if not color:
            col, alpha = np.zeros((H, W, 3), np.uint8), (seg > 0).astype(np.float32)
        return Rendering(color=col, alpha=alpha, depth=depth, seg=seg, amodal=masks)

    @staticmethod
    def _pyrender_mesh(pyrender, spec: MeshSpec):
        # the flip y, z -> -y, -z is a rotation (det +1): face winding and normals stay valid
        v = np.asarray(spec.vertices, dtype=np.float64) * _CV_TO_GL
        f = np.asarray(spec.faces, dtype=np.int64)
        c = np.asarray(spec.color, dtype=np.float64)
        c = np.r_[c, 1.0] if c.size == 3 else c
        if c.max() > 1.0:
            c = c / 255.0
        vc = None
        if spec.vertex_colors is not None:
            vc = np.asarray(spec.vertex_colors)
            vc = vc / 255.0 if vc.dtype == np.uint8 else vc.astype(np.float64)
            if vc.ndim != 2 or vc.shape[0] != len(v) or vc.shape[1] not in (3, 4):
                raise ValueError(f"render: vertex_colors must be (V, 3|4) with V = {len(v)}, got {vc.shape}")
        if spec.smooth:
            n = _vertex_normals(v, f)
        else:  # flat shading: one normal per face, vertices not shared
            tri = v[f]
            fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12)
            v, n = tri.reshape(-1, 3), np.repeat(fn, 3, axis=0)
            vc = None if vc is None else vc[f.ravel()]
            f = np.arange(len(v)).reshape(-1, 3)
        if spec.double_sided:
            # pyrender culls back faces in its segmentation pass whatever the material says, so a
            # two-sided surface is drawn as two one-sided copies (the inner one with reversed
            # winding and normals), which shades and segments the same way in every pass
            f = np.concatenate([f, f[:, ::-1] + len(v)])
            v, n = np.concatenate([v, v]), np.concatenate([n, -n])
            vc = None if vc is None else np.concatenate([vc, vc])
        mat = pyrender.MetallicRoughnessMaterial(baseColorFactor=c, metallicFactor=float(spec.metallic),
                                                 roughnessFactor=float(spec.roughness), doubleSided=False)
        prim = pyrender.Primitive(positions=v.astype(np.float32), normals=n.astype(np.float32),
                                  indices=f.astype(np.uint32),
                                  color_0=None if vc is None else vc.astype(np.float32),
                                  material=mat, mode=pyrender.constants.GLTF.TRIANGLES)
        return pyrender.Mesh([prim])

    @staticmethod
    def _pyrender_light(pyrender, light: Light):
        if light.kind == "directional":
            d = np.asarray(light.direction, dtype=np.float64) * _CV_TO_GL
            n = np.linalg.norm(d)
            if not n > 0:
                raise ValueError(f"Light: direction must be non-zero, got {light.direction}")
            pose = np.eye(4)
            pose[:3, :3] = _look_rotation(d / n)
            return pyrender.DirectionalLight(color=np.asarray(light.color, float),
                                             intensity=float(light.intensity)), pose
        if light.kind == "point":
            pose = np.eye(4)
            pose[:3, 3] = np.asarray(light.position, dtype=np.float64) * _CV_TO_GL
            return pyrender.PointLight(color=np.asarray(light.color, float), intensity=float(light.intensity)), pose
        raise ValueError(f"Light: kind must be 'directional' or 'point', got {light.kind!r}")


_node_class = None


def _ordered_node_class(pyrender):
    """A pyrender ``Node`` hashed by its index in its scene, so that sets of a scene's nodes
    iterate in the same order in every run (object hashes follow memory addresses)."""
    global _node_class
    if _node_class is None:
        class OrderedNode(pyrender.Node):
            def __init__(self, order: int, **kwargs):
                super().__init__(**kwargs)
                self._order = int(order)

            def __hash__(self):
                return self._order

            def __eq__(self, other):
                return self is other

        _node_class = OrderedNode
    return _node_class


def _install_fast_readback(offscreen) -> bool:
    """Replace pyrender's framebuffer readback (``Renderer._read_main_framebuffer``, pyrender
    0.1.45) on this one renderer by an equivalent that skips the depth buffer when it is not
    wanted and converts it without boolean indexing. Returns False (and changes nothing) when
    pyrender's internals are not the expected ones."""
    import types
    inner = getattr(offscreen, "_renderer", None)
    platform = getattr(offscreen, "_platform", None)
    if inner is None or platform is None or not hasattr(inner, "_read_main_framebuffer") \
            or not hasattr(inner, "_main_fb_dims") or not platform.supports_framebuffers() \
            or sys.platform == "darwin":
        return False
    from OpenGL import GL
    from pyrender.constants import RenderFlags

    def read(self, scene, flags):
        width, height = self._main_fb_dims[0], self._main_fb_dims[1]
        want_depth = getattr(self, "_handssca_want_depth", True) or bool(flags & RenderFlags.DEPTH_ONLY)
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self._main_fb_ms)
        GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, self._main_fb)
        GL.glBlitFramebuffer(0, 0, width, height, 0, 0, width, height, GL.GL_COLOR_BUFFER_BIT, GL.GL_LINEAR)
        if want_depth:
            GL.glBlitFramebuffer(0, 0, width, height, 0, 0, width, height, GL.GL_DEPTH_BUFFER_BIT, GL.GL_NEAREST)
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self._main_fb)
        depth = None
        if want_depth:
            buf = GL.glReadPixels(0, 0, width, height, GL.GL_DEPTH_COMPONENT, GL.GL_FLOAT)
            d = np.frombuffer(buf, dtype=np.float32).reshape(height, width)[::-1]
            n, f = scene.main_camera_node.camera.znear, scene.main_camera_node.camera.zfar
            # the same linearisation as pyrender's: z_ndc = 2 d - 1, depth = 2 n f / (f + n - z_ndc (f - n))
            with np.errstate(divide="ignore"):
                lin = np.float32(2.0 * n * f) / (np.float32(f + n) - (2.0 * d - 1.0) * np.float32(f - n))
            depth = np.where(d == 1.0, np.float32(0.0), lin).astype(np.float32)
        if flags & RenderFlags.DEPTH_ONLY:
            return depth
        fmt, ch = (GL.GL_RGBA, 4) if flags & RenderFlags.RGBA else (GL.GL_RGB, 3)
        buf = GL.glReadPixels(0, 0, width, height, fmt, GL.GL_UNSIGNED_BYTE)
        color = np.frombuffer(buf, dtype=np.uint8).reshape(height, width, ch)[::-1]
        return color, depth

    inner._read_main_framebuffer = types.MethodType(read, inner)
    return True


def _label_color(label: int) -> tuple:
    """The flat colour that encodes a label in a segmentation pass (label = R + 256 G)."""
    return (label % 256, label // 256, 0)


def _decode_labels(rgb: np.ndarray, n: int) -> np.ndarray:
    lab = rgb[..., 0].astype(np.uint16) + 256 * rgb[..., 1].astype(np.uint16)
    return lab.astype(np.uint8) if n < 255 else lab


def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (V, 3)."""
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _look_rotation(d: np.ndarray) -> np.ndarray:
    """A rotation whose -z axis is the unit vector d (pyrender lights shine along their -z)."""
    z = -d
    up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], 1)


def get_renderer(width: int, height: int) -> Renderer:
    """The cached :class:`Renderer` of this size (created on first use, kept for the process)."""
    key = (int(width), int(height))
    with _lock:
        r = _renderers.get(key)
        if r is None:
            r = _renderers[key] = Renderer(*key)
        return r


def release_renderers() -> None:
    """Free every cached renderer (all together: EGL cannot lose one while others live)."""
    with _lock:
        items = list(_renderers.values())
        _renderers.clear()
        for r in reversed(items):
            try:
                r._r.delete()
            except Exception:  # noqa: BLE001 - a context already gone with the shared display
                pass


CROP_STEP = 128  # crop sizes are multiples of this (fewer cached renderers)


def _crop_box(vertices: list, K: np.ndarray, width: int, height: int, znear: float):
    """The part of the image the meshes can cover, as (x0, y0, w, h) of a renderer size rounded
    up to CROP_STEP; "full" when that is the whole image or a vertex is behind the near plane;
    None when the meshes are entirely outside the image."""
    v = np.concatenate([np.asarray(x, dtype=np.float64) for x in vertices])
    if not np.all(v[:, 2] > znear):
        return "full"
    uv = project(v, K)
    x0, y0 = int(np.floor(uv[:, 0].min())) - 2, int(np.floor(uv[:, 1].min())) - 2
    x1, y1 = int(np.ceil(uv[:, 0].max())) + 2, int(np.ceil(uv[:, 1].max())) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width - 1), min(y1, height - 1)
    if x1 < x0 or y1 < y0:
        return None
    w = min(width, CROP_STEP * int(np.ceil((x1 - x0 + 1) / CROP_STEP)))
    h = min(height, CROP_STEP * int(np.ceil((y1 - y0 + 1) / CROP_STEP)))
    if w == width and h == height:
        return "full"
    return min(x0, width - w), min(y0, height - h), w, h


def _render_in_box(specs: list, K: np.ndarray, width: int, height: int, box, **kwargs) -> Rendering:
    """Render the meshes into a crop of the image (a renderer of the crop's size and the principal
    point moved by the crop's origin: the same pixels, exactly) and paste it into a full frame."""
    if box == "full":
        return get_renderer(width, height).render(specs, K, **kwargs)
    bg = np.asarray(kwargs.get("bg_color", (0, 0, 0)), dtype=np.float64)[:3]
    color = np.empty((height, width, 3), np.uint8)
    color[:] = np.clip(np.round(bg), 0, 255).astype(np.uint8)
    full = Rendering(color=color, alpha=np.zeros((height, width), np.float32),
                     depth=np.zeros((height, width), np.float32),
                     seg=np.zeros((height, width), np.uint8 if len(specs) < 255 else np.uint16))
    if box is None:
        return full
    x0, y0, w, h = box
    Kc = K.copy()
    Kc[0, 2] -= x0
    Kc[1, 2] -= y0
    r = get_renderer(w, h).render(specs, Kc, **kwargs)
    sl = (slice(y0, y0 + h), slice(x0, x0 + w))
    full.color[sl], full.alpha[sl], full.depth[sl], full.seg[sl] = r.color, r.alpha, r.depth, r.seg
    return full


def render(meshes, K, width: int, height: int, *, amodal=False, crop: bool = True, znear: float = 0.01,
           **kwargs) -> Rendering:
    """Render with the cached renderers; see :meth:`Renderer.render` for the arguments.

    With ``crop`` (the default) only the part of the image the meshes' projections can cover is
    drawn, by a renderer of that size (rounded up to a multiple of 128 pixels) whose principal
    point is moved by the crop's origin, so every pixel is the one the full-size renderer would
    draw; a mesh asked for in ``amodal`` is drawn alone in its own crop. On a software OpenGL
    this is several times faster for small objects in large images.
    """
    K = check_intrinsics(K)
    specs = [_as_spec(m, i) for i, m in enumerate(meshes)]
    if not specs:
        raise ValueError("render: expected at least one mesh")
    if not crop:
        return get_renderer(width, height).render(specs, K, amodal=amodal, znear=znear, **kwargs)
    out = _render_in_box(specs, K, width, height, _crop_box([m.vertices for m in specs], K, width, height, znear),
                         znear=znear, **kwargs)
    if amodal is not False and amodal is not None:
        which = range(len(specs)) if amodal is True else [int(i) for i in amodal]
        out.amodal = [None] * len(specs)
        for i in which:
            if not 0 <= i < len(specs):
                raise ValueError(f"render: amodal index {i} out of range for {len(specs)} meshes")
            if len(specs) == 1:
                out.amodal[i] = out.seg > 0
                continue
            box = _crop_box([specs[i].vertices], K, width, height, znear)
            alone = _render_in_box([specs[i]], K, width, height, box, znear=znear, color=False,
                                   **{k: v for k, v in kwargs.items() if k in ("zfar",)})
            out.amodal[i] = alone.seg > 0
    return out


def overlay_mesh(image, vertices, faces, K, color=(0.55, 0.75, 1.0), opacity: float = 0.7,
                 lights: Optional[Sequence[Light]] = None) -> np.ndarray:
    """Draw a mesh over an image (e.g. a predicted hand over the input photo).

    Args:
        image: (H, W, 3) uint8 RGB (or (H, W) grey).
        vertices: (V, 3) in the OpenCV camera frame of the image, metres. faces: (F, 3).
        K: (3, 3) intrinsics of the image.
        color: RGB 0..1 of the mesh. opacity: 0..1, how much the mesh covers the image.

    Returns:
        (H, W, 3) uint8, the image with the shaded mesh blended in where it covers.
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"overlay_mesh: image must be (H, W, 3) RGB, got {img.shape}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"overlay_mesh: opacity must be in [0, 1], got {opacity}")
    img = img[..., :3].astype(np.float32)
    H, W = img.shape[:2]
    r = render([MeshSpec(vertices, faces, color=tuple(color))], K, W, H, lights=lights)
    a = (r.alpha * float(opacity))[..., None]
    return np.clip(img * (1 - a) + r.color.astype(np.float32) * a + 0.5, 0, 255).astype(np.uint8)


__all__ = ["MeshSpec", "Light", "Rendering", "Renderer", "get_renderer", "release_renderers", "render",
           "overlay_mesh", "check_intrinsics", "gl_platform", "set_platform", "PLATFORMS"]
