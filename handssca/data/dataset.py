"""The base class of the three datasets, and the hand model their MANO parameters are read with.

:class:`HandDataset` turns a loader's :class:`~handssca.data.sample.RawSample` into the sample
dictionary (:func:`~handssca.data.sample.make_sample`), draws the training augmentation, handles
corrupt samples (:mod:`handssca.data.errors`) and checks predictions before a dataset's
``to_protocol`` (:meth:`HandDataset.ordered_predictions`). The loaders (:mod:`~handssca.data.freihand`,
:mod:`~handssca.data.ho3d`, :mod:`~handssca.data.dexycb`) subclass it.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.utils.data import Dataset

from handssca.hand import load_hand_model

from .augmentation import NO_AUGMENTATION, sample_augmentation
from .errors import CorruptSampleError, SkipCounter, TooManySkippedError
from .files import read_synth_info
from .images import read_image
from .sample import RawSample, SampleTransform, choose_box, make_sample


def _numpy(x) -> np.ndarray:
    """A numpy view of a tensor (detached, on the CPU) or of anything ``np.asarray`` takes."""
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)


class HandDataset(Dataset):
    """Base of the three datasets: ``__getitem__``, augmentation, corrupt-sample handling.

    A subclass sets ``name``, ``input_size``, ``train`` (augment and crop from the joints),
    ``test_box`` (the crop box mode at test time), ``fingertips`` (the dataset's fingertip-vertex
    convention, for a matching ``HandLayer``), calls :meth:`_init_skips` and implements
    ``__len__``, :meth:`sample_id` and :meth:`raw` (which raises :class:`CorruptSampleError` for a
    sample that cannot be read).

    Corrupt samples: an unreadable image or annotation is counted (``skipped``) and reported with
    ``warnings.warn``. In training the next readable sample takes its place; at test time (the
    order and count of predictions matter) the sample keeps its place with a black image, and
    ``root`` NaN if its annotation was unreadable. Past ``max_skip`` (a share of the dataset) the
    run stops with :class:`TooManySkippedError`.
    """

    name = "dataset"
    fingertips = "manopth"
    test_box = "joints"
    train_box = "joints"

    def _init_skips(self, n: int, max_skip: float) -> None:
        self.skips = SkipCounter(self.name, n, max_skip)

    @property
    def skipped(self) -> int:
        """How many distinct samples were skipped as corrupt so far."""
        return self.skips.count

    def skip_summary(self) -> str:
        """A one-line summary of the skipped samples (and a warning when there were any)."""
        return self.skips.summary()

    def sample_id(self, index: int) -> str:  # pragma: no cover - abstract
        """The dataset's id of the sample at ``index`` (cheap: no file is read)."""
        raise NotImplementedError

    def raw(self, index: int) -> RawSample:  # pragma: no cover - abstract
        """The :class:`RawSample` at ``index`` (raises :class:`CorruptSampleError`)."""
        raise NotImplementedError

    def skip_key(self, index: int) -> int:
        """The key under which a corrupt sample is counted (0..n-1 of the skip counter)."""
        return index

    def raw_image(self, raw: RawSample) -> np.ndarray:
        """The RGB image of a raw sample (raises :class:`CorruptSampleError`)."""
        return read_image(raw.image_path, raw.image_size)

    def _rng(self, rng) -> np.random.Generator:
        if rng is not None:
            return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        # torch's generator is seeded per DataLoader worker and epoch (numpy's global one is not)
        return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))

    def get(self, index: int, rng=None, augment: bool | None = None) -> tuple[dict, SampleTransform]:
        """The sample at ``index`` and how it was made.

        Args:
            index: 0 <= index < len(self).
            rng: a numpy Generator or seed for the augmentation draw (default: drawn from torch's
                generator, so ``torch.manual_seed`` and DataLoader workers seed it).
            augment: override the dataset's ``augment`` setting.
        Returns:
            (the sample dictionary, :class:`SampleTransform`).
        """
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{self.name}: index {index} out of range for {n} samples")
        index = index % n
        augment = self.augment if augment is None else augment
        attempts = n if self.train else 1
        for k in range(attempts):
            i = (index + k) % n
            raw, img = None, None
            try:
                raw = self.raw(i)
                img = self.raw_image(raw)
            except CorruptSampleError as e:
                self.skips.record(self.skip_key(i), self.sample_id(i), str(e))
                if self.train:
                    continue
                if raw is None:
                    raw = self.placeholder(i)
            box = choose_box(raw, self.train_box if self.train else self.test_box)
            aug = sample_augmentation(self._rng(rng)) if augment else NO_AUGMENTATION
            return make_sample(raw, img, index=i, input_size=self.input_size, box=box, aug=aug)
        raise TooManySkippedError(f"{self.name}: no readable sample at all")

    def placeholder(self, index: int) -> RawSample:
        """A raw sample without annotation, kept at test time in place of an unreadable one."""
        return RawSample(image_path="", image_size=(self.input_size, self.input_size), K=np.eye(3),
                         sample_id=self.sample_id(index))

    def __getitem__(self, index: int) -> dict:
        return self.get(index)[0]

    def ordered_predictions(self, indices, joints, vertices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predictions sorted by sample index, checked to cover every sample exactly once (the
        first step of each dataset's ``to_protocol``).

        Args:
            indices: (B,) the samples' ``index`` (numpy or torch). joints: (B, 21, 3).
            vertices: (B, V, 3) (V = 778, or any V for a placeholder).
        Returns:
            (indices, joints, vertices) as int64 / float64 numpy arrays in index order, B = len(self).
        Raises:
            ValueError: wrong shapes, or an index missing or repeated (named in the message).
        """
        idx = _numpy(indices).astype(np.int64).reshape(-1)
        j, v = np.asarray(_numpy(joints), dtype=np.float64), np.asarray(_numpy(vertices), dtype=np.float64)
        if j.shape != (len(idx), 21, 3) or v.ndim != 3 or v.shape[0] != len(idx) or v.shape[2] != 3:
            raise ValueError(f"{self.name}: expected joints (B, 21, 3) and vertices (B, V, 3) for B = {len(idx)} "
                             f"indices, got {j.shape} and {v.shape}")
        order = np.argsort(idx, kind="stable")
        idx, j, v = idx[order], j[order], v[order]
        want = np.arange(len(self))
        if len(idx) != len(want) or np.any(idx != want):
            missing = np.setdiff1d(want, idx)
            dup = idx[1:][idx[1:] == idx[:-1]]
            raise ValueError(f"{self.name}: predictions must cover every sample index 0..{len(self) - 1} once; "
                             f"{len(missing)} missing (first {missing[:5].tolist()}), "
                             f"duplicated {dup[:5].tolist()}")
        return idx, j, v


def hand_model_for(root, is_rhand: bool = True, hand_model=None):
    """The hand model a dataset's MANO parameters are read with: ``hand_model`` if given; for a
    synthetic root, the kind recorded in its ``synth_info.json`` (its annotations fit that model
    only); otherwise ``load_hand_model()`` (the real MANO when installed)."""
    if hand_model is not None:
        return hand_model
    info = read_synth_info(root)
    kind = ((info or {}).get("hand_model") or {}).get("kind")
    model = load_hand_model(is_rhand=is_rhand, kind=kind if kind in ("mano", "procedural") else None)
    if info is None and model.kind != "mano":
        warnings.warn(f"{root}: a real dataset read without MANO (the procedural hand is in use): the meshes "
                      "built from its MANO parameters, and the HO3D/DexYCB poses, do not match its images; "
                      "install MANO (data/README.md)", RuntimeWarning, stacklevel=2)
    return model


__all__ = ["HandDataset", "hand_model_for"]
