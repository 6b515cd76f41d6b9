"""Images: reading a dataset's RGB file, warping the crop, ImageNet normalisation and back.

Pixels follow OpenCV's convention (:mod:`handssca.data.geometry`); images are RGB ``uint8``
(H, W, 3) until :func:`normalise_image` turns the crop into the network's float32 (3, S, S) input.

Before an image is decoded, its size is read from the file's header (:func:`image_size`, Pillow
reads only the header) and an image of more than :data:`MAX_IMAGE_PIXELS` is refused: a small
file can declare a huge image (a flat 12000 x 12000 PNG is a few hundred kB), and decoding it
would take gigabytes before any check could run.
"""
from __future__ import annotations

import os
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from . import IMAGENET_MEAN, IMAGENET_STD  # ImageNet statistics (RGB, images in [0, 1]), defined once
from .errors import CorruptSampleError, ImageTooLargeError

#: the most pixels an image may have to be decoded: 40 megapixels (e.g. 7700 x 5200, above a
#: 36-megapixel camera's photo), 120 MB as 8-bit RGB. The network sees a 256 x 256 crop, so a
#: bigger image only costs memory (``predict`` keeps several copies of it, up to a few GB at
#: this size) and time; scale such an image down first.
MAX_IMAGE_PIXELS = 40_000_000


def image_size(path, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """The (width, height) an image file's header declares, read without decoding any pixel.

    Raises:
        ImageTooLargeError: more than ``max_pixels`` pixels (names the file, its size, the bound
            and what to do).
        CorruptSampleError: Pillow cannot read the header (not an image file, or truncated).
    """
    try:
        # Pillow warns about (and above twice its own bound refuses) what it takes for a
        # decompression bomb; the bound here is the one that counts, so its warning is muted
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(_too_large(path, str(exc), max_pixels)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptSampleError(f"image {path} cannot be decoded: its header is not that of a "
                                 f"PNG, JPEG, BMP, TIFF, WebP or other image file ({exc})") from None
    if width * height > max_pixels:
        raise ImageTooLargeError(_too_large(path, f"it is {width} x {height} pixels", max_pixels))
    return width, height


def _too_large(path, what: str, max_pixels: int) -> str:
    return (f"image {path} is too large to decode: {what}, more than the {max_pixels:,} pixels "
            f"allowed (handssca.data.images.MAX_IMAGE_PIXELS). Scale it down (e.g. to 4000 "
            f"pixels across) and give the box in the scaled image's pixels")


def read_image(path, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an RGB image as (H, W, 3) uint8.

    Args:
        path: the file. expected_size: (width, height) the file must have, if given.
    Raises:
        CorruptSampleError: missing, unreadable or of the wrong size; ImageTooLargeError (one
            of them) above :data:`MAX_IMAGE_PIXELS`, before decoding.
    """
    path = str(path)
    if not os.path.exists(path):
        raise CorruptSampleError(f"image {path} is missing")
    image_size(path)  # the header's size is checked before any pixel is decoded
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


__all__ = ["MAX_IMAGE_PIXELS", "image_size", "read_image", "warp_image", "normalise_image", "denormalise_image"]
