"""Procedural backgrounds (no downloaded images): gradients, value noise, shapes, stripes and
checkers, a green screen; compositing of a rendering over a background; camera noise.

All functions draw from an explicit ``numpy.random.Generator`` and return (H, W, 3) uint8 RGB.
"""
from __future__ import annotations

import colorsys
from functools import lru_cache

import cv2
import numpy as np


def random_color(rng: np.random.Generator, sat=(0.0, 0.9), val=(0.15, 0.95)) -> np.ndarray:
    """An RGB colour (3,) in 0..255 from random hue, saturation and value ranges."""
    return 255.0 * np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val)))


def gradient(rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """A linear gradient between two random colours at a random angle, float32 (H, W, 3)."""
    a, b = random_color(rng), random_color(rng)
    th = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    s = (x - W / 2) * np.cos(th) + (y - H / 2) * np.sin(th)
    s = (s - s.min()) / max(float(np.ptp(s)), 1e-6)
    return (a[None, None] * (1 - s[..., None]) + b[None, None] * s[..., None]).astype(np.float32)


def value_noise(rng: np.random.Generator, H: int, W: int, octaves: int = 5, base: int = 3) -> np.ndarray:
    """Smooth multi-octave value noise in [0, 1], float32 (H, W)."""
    out = np.zeros((H, W), np.float32)
    total = 0.0
    for k in range(octaves):
        g = base * 2 ** k
        grid = rng.random((g + 1, g + 1)).astype(np.float32)
        amp = 0.55 ** k
        out += amp * cv2.resize(grid, (W, H), interpolation=cv2.INTER_CUBIC)
        total += amp
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def noise_texture(rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """Value noise mapped between two colours, float32 (H, W, 3)."""
    n = value_noise(rng, H, W, octaves=int(rng.integers(3, 7)), base=int(rng.integers(2, 6)))
    a, b = random_color(rng), random_color(rng)
    return (a[None, None] * (1 - n[..., None]) + b[None, None] * n[..., None]).astype(np.float32)


def pattern(rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """Stripes or a checker at a random angle and period, as a factor in [1 - c, 1], (H, W)."""
    th = rng.uniform(0, np.pi)
    period = rng.uniform(6, 60)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    u = x * np.cos(th) + y * np.sin(th)
    c = rng.uniform(0.1, 0.5)
    if rng.random() < 0.5:
        p = 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
    else:
        v = -x * np.sin(th) + y * np.cos(th)
        p = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    return (1 - c * p).astype(np.float32)


def shapes(rng: np.random.Generator, img: np.ndarray, count: int) -> np.ndarray:
    """Draw ``count`` random filled circles, rectangles, polygons and thick lines on img (float32)."""
    H, W = img.shape[:2]
    s = max(H, W)
    for _ in range(count):
        color = tuple(float(c) for c in random_color(rng, sat=(0.0, 1.0), val=(0.05, 1.0)))
        kind = rng.integers(4)
        if kind == 0:
            cv2.circle(img, (int(rng.integers(W)), int(rng.integers(H))), int(rng.uniform(0.02, 0.25) * s),
                       color, -1, lineType=cv2.LINE_AA)
        elif kind == 1:
            p = rng.integers(0, [W, H], size=(2, 2))
            cv2.rectangle(img, tuple(int(v) for v in p[0]), tuple(int(v) for v in p[1]), color, -1)
        elif kind == 2:
            c = rng.uniform([0, 0], [W, H])
            k = int(rng.integers(3, 8))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            r = rng.uniform(0.03, 0.25, k) * s
            pts = np.stack([c[0] + r * np.cos(ang), c[1] + r * np.sin(ang)], 1).astype(np.int32)
            cv2.fillPoly(img, [pts], color, lineType=cv2.LINE_AA)
        else:
            p = rng.integers(0, [W, H], size=(2, 2))
            cv2.line(img, tuple(int(v) for v in p[0]), tuple(int(v) for v in p[1]), color,
                     int(rng.integers(1, max(2, s // 30))), lineType=cv2.LINE_AA)
    return img


def procedural(rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """A random procedural background (H, W, 3) uint8: a gradient or noise base, shapes, maybe a
    stripe/checker pattern, maybe defocus blur."""
    img = gradient(rng, H, W) if rng.random() < 0.4 else noise_texture(rng, H, W)
    img = shapes(rng, img, int(rng.integers(0, 12)))
    if rng.random() < 0.4:
        img *= pattern(rng, H, W)[..., None]
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 3.0)))
    return np.clip(img, 0, 255).astype(np.uint8)


def green_screen(rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """A green screen with uneven lighting, (H, W, 3) uint8."""
    base = np.array([rng.uniform(20, 70), rng.uniform(140, 200), rng.uniform(40, 90)], np.float32)
    light = 0.75 + 0.5 * value_noise(rng, H, W, octaves=3, base=2)
    return np.clip(base[None, None] * light[..., None], 0, 255).astype(np.uint8)


def composite(color: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """A rendering over a background: color + (1 - alpha) background (pyrender's colour is already
    multiplied by its coverage over a black background). float32 (H, W, 3)."""
    return color.astype(np.float32) + (1.0 - alpha[..., None]) * background.astype(np.float32)


_NOISE_TILE = (1024, 1024)


@lru_cache(maxsize=1)
def _noise_tile() -> np.ndarray:
    """A fixed tile of standard normal noise (H, W, 3), float32, drawn once (seed 0)."""
    return np.random.default_rng(0).standard_normal(_NOISE_TILE + (3,), dtype=np.float32)


def camera_noise(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Sensor noise (Gaussian, sigma 0-4 grey levels) and a global gain; -> uint8.

    The noise is a window, at a random offset, of a fixed tile of Gaussian noise (drawing fresh
    noise for every pixel costs as much as rendering the image)."""
    gain, sigma = np.float32(rng.uniform(0.9, 1.1)), np.float32(rng.uniform(0.0, 4.0))
    H, W = img.shape[:2]
    tile = _noise_tile()
    if H > tile.shape[0] or W > tile.shape[1]:
        noise = rng.standard_normal(img.shape, dtype=np.float32)
    else:
        y0, x0 = int(rng.integers(tile.shape[0] - H + 1)), int(rng.integers(tile.shape[1] - W + 1))
        noise = tile[y0:y0 + H, x0:x0 + W, : img.shape[2]] if img.ndim == 3 else tile[y0:y0 + H, x0:x0 + W, 0]
    out = img * gain
    out += noise * sigma
    out += np.float32(0.5)
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def recolor(rng: np.random.Generator, img: np.ndarray, mask_alpha: np.ndarray, strength: float = 0.25) -> np.ndarray:
    """Random per-channel gains (1 +- strength) applied where ``mask_alpha`` (H, W) covers."""
    gains = 1.0 + rng.uniform(-strength, strength, 3).astype(np.float32)
    a = mask_alpha[..., None].astype(np.float32)
    return img * (1 - a) + img * gains[None, None] * a


def plane_depth(K: np.ndarray, H: int, W: int, normal: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Depth z (H, W) of the plane through ``point`` with ``normal`` (camera frame) along each
    pixel's ray; 0 where the ray misses it (parallel or behind the camera)."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    den = rays @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (point @ normal) / den
    return np.where(np.isfinite(z) & (z > 0), z, 0.0).astype(np.float32)
