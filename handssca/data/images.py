"""Images: reading a dataset's RGB file, warping the crop, ImageNet normalisation and back.

Pixels follow OpenCV's convention (:mod:`handssca.data.geometry`); images are RGB ``uint8``
(H, W, 3) until :func:`normalise_image` turns the crop into the network's float32 (3, S, S) input.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from . import IMAGENET_MEAN, IMAGENET_STD  # ImageNet statistics (RGB, images in [0, 1]), defined once
from .errors import CorruptSampleError


def read_image(path, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an RGB image as (H, W, 3) uint8.

    Args:
        path: the file. expected_size: (width, height) the file must have, if given.
    Raises:
        CorruptSampleError: missing, unreadable or of the wrong size.
    """
    path = str(path)
    if not os.path.exists(path):
        raise CorruptSampleError(f"image {path} is missing")
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None or img.ndim != 3 or img.shape[2] != 3:
        raise CorruptSampleError(f"image {path} cannot be decoded")
    if expected_size is not None and (img.shape[1], img.shape[0]) != tuple(expected_size):
        raise CorruptSampleError(f"image {path} is {img.shape[1]}x{img.shape[0]}, expected "
                                 f"{expected_size[0]}x{expected_size[1]}")
    return img[:, :, ::-1]


def warp_image(img: np.ndarray, A, size: int) -> np.ndarray:
    """The S x S crop of ``img`` under the (2, 3) transform A (bilinear, black outside)."""
    return cv2.warpAffine(np.ascontiguousarray(img), np.asarray(A, dtype=np.float64), (size, size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def normalise_image(img: np.ndarray, color=(1.0, 1.0, 1.0)) -> np.ndarray:
    """uint8 (S, S, 3) RGB -> float32 (3, S, S): /255, times the colour factors (clipped to [0, 1]),
    minus the ImageNet mean, over the ImageNet std."""
    x = img.astype(np.float32) / 255.0
    if tuple(color) != (1.0, 1.0, 1.0):
        x = np.clip(x * np.asarray(color, dtype=np.float32), 0.0, 1.0)
    x = (x - np.asarray(IMAGENET_MEAN, dtype=np.float32)) / np.asarray(IMAGENET_STD, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def denormalise_image(image) -> np.ndarray:
    """A sample's ``image`` (3, S, S), numpy or torch, back to (S, S, 3) float RGB in [0, 1]."""
    x = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    x = x.transpose(1, 2, 0) * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)
    return np.clip(x, 0.0, 1.0)


__all__ = ["read_image", "warp_image", "normalise_image", "denormalise_image"]
