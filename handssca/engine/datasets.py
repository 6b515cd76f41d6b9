"""Which data a run uses: a real dataset folder, or synthetic data of that dataset's style.

``resolve_data(dataset, data_root, profile, seed)`` returns the folder and its kind. Without a
folder the engine uses synthetic data in the dataset's own layout, generated on first use by
:func:`handssca.data.synth.generate` into ``data/synth/<style>-<profile>-<seed>`` (the counts
come from the profile's ``synthetic`` section) and reused afterwards. Every result the engine
writes carries ``data: "synthetic"`` or ``"real"``: a run on synthetic data never passes for a
run on FreiHAND, HO-3D or DexYCB.

``open_dataset`` builds the dataset class of :mod:`handssca.data` for a split; the sample
dictionaries follow the sample contract (``image``, ``joints2d``, ``joints3d``, ``vertices``,
``pose``, ``shape``, ``root``, ``K``, ``bbox``, ``is_left``, ``occlusion``, ``has_3d``, ``index``,
``sample_id``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..utils import repo_root
from .profiles import check_dataset, synthetic_settings

DATA_KINDS = ("real", "synthetic")
#: what identifies synthetic data (from its ``synth_info.json``): a run records it in its
#: configuration, and the run's data is recognised by it wherever its folder is now
SYNTH_IDENTITY_KEYS = ("style", "seed", "n", "options", "generator_version")


@dataclass(frozen=True)
class DataSource:
    """The data of a run.

    Attributes:
        dataset: "freihand", "ho3d" or "dexycb" (the style, for synthetic data).
        root: the folder in the dataset's official layout.
        kind: "real" or "synthetic".
    """

    dataset: str
    root: Path
    kind: str

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "root": str(self.root), "kind": self.kind}


def synth_root(dataset: str, profile: str, seed: int) -> Path:
    """Where the synthetic data of a (style, profile, seed) lives: ``data/synth/<style>-<profile>-<seed>``."""
    return repo_root() / "data" / "synth" / f"{check_dataset(dataset)}-{profile}-{int(seed)}"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def synth_is_complete(root: Path, dataset: str, settings: dict, seed: int) -> bool:
    """True when ``root`` holds a complete synthetic dataset of this style, size and seed
    (the generator's ``synth_info.json``)."""
    from ..data.files import read_synth_info

    info = read_synth_info(root) if Path(root).is_dir() else None
    if not info or not info.get("complete"):
        return False
    same = info.get("style") == dataset and info.get("seed") == int(seed) and info.get("n") == settings["n"]
    options = info.get("options") or {}
    for key, value in settings.items():  # n_eval, frames_per_sequence, ...
        if key != "n":
            same = same and options.get(key) == value
    if dataset == "ho3d" and "frames_per_sequence" not in settings:
        same = same and "frames_per_sequence" not in options
    return bool(same)


def synthetic_identity(root) -> Optional[dict]:
    """The identity of the synthetic data in ``root`` (:data:`SYNTH_IDENTITY_KEYS` of its
    ``synth_info.json``), or None when ``root`` holds no synthetic data."""
    from ..data.files import read_synth_info

    info = read_synth_info(root) if Path(root).is_dir() else None
    return None if info is None else {k: info.get(k) for k in SYNTH_IDENTITY_KEYS}


def ensure_synthetic(dataset: str, profile_name: str, seed: int, profile=None,
                     root: Optional[Path] = None, log=_log) -> Path:
    """The synthetic data of ``dataset``'s style for this profile and seed, generated if needed.

    The generator writes every file atomically and resumes an interrupted generation, and marks
    the folder complete only at the end, so a killed generation is finished, not reused.
    """
    from .profiles import resolve_profile

    prof = profile if profile is not None else resolve_profile(profile_name)
    settings = synthetic_settings(prof, dataset)
    root = Path(root) if root is not None else synth_root(dataset, profile_name, seed)
    what = ", ".join(f"{k} = {v}" for k, v in settings.items())
    if synth_is_complete(root, dataset, settings, seed):
        log(f"[data] no data root given: using the synthetic {dataset}-style data in {root} "
            f"({what}, seed {seed})")
        return root
    from ..data import synth

    log(f"[data] no data root given: generating synthetic {dataset}-style data ({what}, seed "
        f"{seed}) into {root} (once; later runs reuse it)")
    root.parent.mkdir(parents=True, exist_ok=True)
    # the folder is the engine's own (named by style, profile and seed): synthetic data of other
    # settings there (a profile edited since) is replaced; runs trained on it record the settings
    # in their configuration, so they are not reused with the new data
    synth.generate(dataset, root, seed=int(seed), overwrite=True, **settings)
    return root


def resolve_data(dataset: str, data_root=None, profile: str = "quick", seed: int = 0,
                 profile_obj=None, log=_log) -> DataSource:
    """The data of a run: ``data_root`` when given, else synthetic data of that style.

    A folder written by the synthetic generator (it holds ``synth_info.json``) is "synthetic"
    whoever points at it; any other folder is "real".

    Args:
        dataset: "freihand", "ho3d" or "dexycb".
        data_root: the dataset folder, or None / "" for synthetic data of that style.
        profile: the profile name (it sets the synthetic counts and names the folder).
        seed: the synthetic data's seed.

    Raises:
        FileNotFoundError: ``data_root`` is given but does not exist.
    """
    dataset = check_dataset(dataset)
    if data_root not in (None, ""):
        from ..data.files import read_synth_info

        root = Path(data_root).expanduser().resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"--data-root {root} is not a folder (leave it out to use "
                                    f"synthetic {dataset}-style data)")
        kind = "synthetic" if read_synth_info(root) is not None else "real"
        return DataSource(dataset, root, kind)
    root = ensure_synthetic(dataset, profile, seed, profile_obj, log=log)
    return DataSource(dataset, root.resolve(), "synthetic")


def open_dataset(source: DataSource, split: str, input_size: int, train: Optional[bool] = None,
                 hand_model=None, single_version: bool = False) -> Dataset:
    """The :mod:`handssca.data` dataset of ``source`` for ``split`` ("train" or "test").

    Args:
        source: from :func:`resolve_data`.
        split: "train" or "test" (FreiHAND: training/evaluation; HO-3D: train/evaluation;
            DexYCB: s0 train/test, the paper's setup).
        input_size: S, the crop size.
        train: augment and crop from the 2D joints (default: True for "train").
        hand_model: the hand model for ground-truth meshes (default ``load_hand_model()``).
        single_version: FreiHAND only: read the "gs" image version only (one row per unique
            sample, e.g. for the mean-pose baseline).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    from ..data import build_dataset

    kw = {"input_size": int(input_size), "train": train}
    if source.dataset == "freihand":
        kw["hand_model"] = hand_model
        if single_version:
            kw["versions"] = ("gs",)
    elif source.dataset == "ho3d":
        kw["hand_model"] = hand_model
    else:
        kw["setup"] = "s0"
    return build_dataset(source.dataset, source.root, split, **kw)


class Unaugmented(Dataset):
    """A view of a training dataset without augmentation (for validation): the same crops from the
    2D joints, no random scale, rotation or colour.

    Args:
        base: a :class:`handssca.data.dataset.HandDataset`.
        indices: the rows of ``base`` to show.
    """

    def __init__(self, base, indices: Sequence[int]):
        self.base, self.indices = base, [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return self.base.get(self.indices[i], augment=False)[0]


class EpochAugmented(Dataset):
    """A view of a training dataset whose augmentation depends only on (seed, epoch, row).

    Items are addressed by ``(epoch, i)`` pairs (from :class:`EpochSampler`); the augmentation of
    row ``i`` in ``epoch`` is drawn from a generator seeded by (seed, epoch, i). So the data of an
    epoch is the same whichever worker loads it, in whatever order, after whatever ran before:
    what makes a resumed run repeat the uninterrupted one.

    Args:
        base: a :class:`handssca.data.dataset.HandDataset`.
        indices: the rows of ``base`` to show.
        seed: the run's seed.
        augment: False shows the rows without augmentation (the training setting ``augment``,
            e.g. to check that a network can overfit a few images).
    """

    def __init__(self, base, indices: Sequence[int], seed: int, augment: bool = True):
        self.base, self.indices, self.seed = base, [int(i) for i in indices], int(seed)
        self.augment = bool(augment)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key) -> dict:
        epoch, i = key
        rng = np.random.default_rng([self.seed, int(epoch), int(i), 0x5A4D])
        return self.base.get(self.indices[int(i)], rng=rng, augment=self.augment)[0]


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, i)`` for a permutation of ``range(n)`` drawn from (seed, epoch) alone;
    :meth:`set_epoch` before each epoch."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        from .randomness import derive_seed

        perm = np.random.default_rng(derive_seed(self.seed, self.epoch, "loader")).permutation(self.n)
        return iter([(self.epoch, int(i)) for i in perm])


class _MemoRaw:
    """Memoises a dataset's ``raw(i)`` (its decoded annotation, e.g. HO-3D's MANO mesh computed
    per frame), per process. The image is still read and cropped every time."""

    def __init__(self, raw):
        self.raw, self.memo = raw, {}

    def __call__(self, i: int):
        import dataclasses

        if i not in self.memo:
            self.memo[i] = self.raw(i)
        return dataclasses.replace(self.memo[i])


#: datasets up to this many rows keep their decoded annotations in memory (each process)
MEMO_MAX_ROWS = 20000


def memoise_annotations(ds, max_rows: int = MEMO_MAX_ROWS):
    """Let ``ds`` keep its decoded annotations in memory when it has at most ``max_rows`` rows
    (a training epoch then decodes each annotation once per worker, not once per epoch; with
    persistent workers the memo lasts the whole run). Returns ``ds``."""
    if hasattr(ds, "raw") and len(ds) <= max_rows and not isinstance(getattr(ds, "raw"), _MemoRaw):
        ds.raw = _MemoRaw(ds.raw)
    return ds


class _MemoImages:
    """Memoises a dataset's decoded images (``raw_image``), per process, up to ``max_bytes``;
    images past the budget are read from disk every time, as without the memo."""

    def __init__(self, read, max_bytes: int):
        self.read, self.max_bytes, self.used, self.memo = read, int(max_bytes), 0, {}

    def __call__(self, raw):
        key = raw.image_path
        img = self.memo.get(key)
        if img is None:
            img = self.read(raw)
            if self.used + img.nbytes <= self.max_bytes:
                img.setflags(write=False)  # shared by every later crop of the same frame
                self.memo[key] = img
                self.used += img.nbytes
        return img


def memoise_images(ds, max_megabytes: float):
    """Let ``ds`` keep up to ``max_megabytes`` of decoded images in memory (each process), so
    that a small dataset's files are decoded once per run, not once per epoch: on two CPU
    cores, decoding a 640 x 480 PNG costs about as much as a tenth of a training step of the
    quick network per image. The crops and augmentation are still made from the image every
    time, so the samples are the same. 0 turns it off. Returns ``ds``."""
    if max_megabytes > 0 and hasattr(ds, "raw_image") and not isinstance(ds.raw_image, _MemoImages):
        ds.raw_image = _MemoImages(ds.raw_image, max_megabytes * 2 ** 20)
    return ds


def split_groups(ds) -> np.ndarray:
    """A group id per row of ``ds``; rows of one group stay on one side of the validation split,
    so that validation measures generalisation to unseen hands, not to the next video frame.

    FreiHAND: the unique sample (its four image versions together); HO-3D: the sequence
    (``SEQ`` of ``SEQ/FID``); DexYCB: the subject's sequence (all its cameras and frames);
    anything else: each row alone.
    """
    n = len(ds)
    if hasattr(ds, "locate") and hasattr(ds, "ids"):  # FreiHAND
        return np.array([ds.locate(i)[0] for i in range(n)])
    if hasattr(ds, "sample_id"):
        ids = [str(ds.sample_id(i)) for i in range(n)]
        if ids and all("/" in s for s in ids):
            depth = 1 if ids[0].count("/") == 1 else 2  # HO3D SEQ/FID; DexYCB subject/seq/...
            keys = ["/".join(s.split("/")[:depth]) for s in ids]
            _, inverse = np.unique(keys, return_inverse=True)
            return inverse
    return np.arange(n)


def train_val_split(ds, fraction: float, max_val: int, seed: int):
    """Split a training dataset's rows into (train rows, validation rows) by whole groups
    (:func:`split_groups`), drawn from a generator seeded by ``seed`` alone (a resumed run
    splits the same way).

    Groups are taken in random order until the validation rows reach ``fraction`` of the rows
    (capped at ``max_val`` rows when > 0); at least one group goes to validation and one stays
    for training. ``fraction`` 0, or a dataset of a single group, gives no validation rows.
    """
    from .randomness import derive_seed

    groups = split_groups(ds)
    uniq, sizes = np.unique(groups, return_counts=True)
    n = len(groups)
    if fraction <= 0 or len(uniq) < 2:
        return np.arange(n), np.arange(0)
    target = fraction * n
    if max_val > 0:
        target = min(target, max_val)
    rng = np.random.default_rng(derive_seed(seed, -1, "split"))
    order = rng.permutation(len(uniq))
    chosen, total = [], 0
    for k in order[:-1]:  # the last group in the order always stays for training
        if chosen and total + sizes[k] > target:
            break
        chosen.append(uniq[k])
        total += sizes[k]
    is_val = np.isin(groups, chosen)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def root_relative_mean(ds) -> dict:
    """Means over a dataset's rows, without augmentation (mirrored left hands included as the
    right hands the network sees), reading the annotations only (``ds.raw``), not the images.

    Returns:
        {"joints": (21, 3), "vertices": (778, 3)} the mean root-relative joints and vertices
        (metres, camera frame); {"articulation": (45,), "shape": (10,)} the mean MANO
        articulation offsets (axis-angle, flat_hand_mean=False) and betas; "count": n.
        float64 numpy.
    """
    from ..data.errors import CorruptSampleError
    from ..data.geometry import mirror_points, mirror_pose

    sj, sv, sa, sb, n = np.zeros((21, 3)), np.zeros((778, 3)), np.zeros(45), np.zeros(10), 0
    for i in range(len(ds)):
        try:
            raw = ds.raw(i)
        except CorruptSampleError:
            continue
        if not raw.has_3d:
            continue
        X, V = np.asarray(raw.joints3d, np.float64), np.asarray(raw.vertices, np.float64)
        X, V = X - X[0], V - X[0]
        pose = np.asarray(raw.pose, np.float64)
        if raw.is_left:
            X, V, pose = mirror_points(X), mirror_points(V), mirror_pose(pose)
        sj += X
        sv += V
        sa += pose[3:]
        sb += np.asarray(raw.shape, np.float64)
        n += 1
    if n == 0:
        raise ValueError(f"{getattr(ds, 'name', 'dataset')}: no sample with 3D ground truth to "
                         f"average")
    return {"joints": sj / n, "vertices": sv / n, "articulation": sa / n, "shape": sb / n,
            "count": n}


def collate(batch):
    """``torch.utils.data.default_collate`` (samples follow the contract: no None values)."""
    return torch.utils.data.default_collate(batch)
