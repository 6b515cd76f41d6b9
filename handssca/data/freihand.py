"""FreiHAND v2: the official layout (``FreiHAND_pub_v2``), read as released
(book/datasets_and_metrics.md, section FreiHAND).

Layout (root folder)::

    training/rgb/%08d.jpg        N x 4 images: file index = id + N k, k = 0 gs, 1 hom, 2 sample, 3 auto
    training_K.json              list[N] of 3x3 intrinsics
    training_mano.json           list[N] of 1x61 MANO vectors
    training_xyz.json            list[N] of 21x3 joints (m, camera frame, F order)
    training_verts.json          list[N] of 778x3 vertices (optional: else computed from the MANO vector)
    training_scale.json          list[N] of bone lengths (optional, not used)
    evaluation/rgb/%08d.jpg      the evaluation images (gs version only)
    evaluation_K.json            list[M] of 3x3
    evaluation_xyz.json, evaluation_verts.json, evaluation_mano.json   optional evaluation ground truth

N (32,560 in the release) is the number of entries in the annotation files, so a folder with
fewer unique samples (synthetic data) is read with the same index arithmetic.

Conventions (each applied once, here):

- 3D points are in metres in the OpenCV camera frame, F order: used as they are.
- The 61-value MANO vector: [0:48] pose as offsets from hands_mean (flat_hand_mean=False, global
  rotation in the camera frame: used as is), [48:58] betas, [58:60] uv_root = pixel position of
  F joint 9 (middle MCP), [60] a weak-perspective scale s (not a translation): joint 9 lies at
  ((u - p_x)/s, (v - p_y)/s, f/s) with f = (f_x + f_y)/2 (:func:`mano_root`, FreiHAND's
  ``recover_root``); the posed mesh is translated to put joint 9 there (:func:`mano_mesh`).
- The ground truth's fingertips are FreiHAND's vertices 744/320/443/555/672 (``fingertips``).
- ``*_xyz.json`` is read in float64, as FreiHAND's ``eval.py`` reads it (Python's ``json``), and so
  are the evaluation split's ``evaluation_verts.json``: the wrist that :meth:`FreiHAND.to_protocol`
  puts the predictions on is then the official ground truth's wrist to the last bit (read in
  float32, it is 1e-8 m off, which fails the AUC's 0 mm threshold for the wrist: 2.4e-4 on the
  unaligned AUC). The training split's vertices stay float32 (the 1.5 GB file, half the memory).

Crops: training crops the box of the 2D joints x1.5 with HandOccNet's augmentation and uses all
four image versions; testing feeds the whole 224 x 224 image, as HandSSCA does.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .dataset import HandDataset, hand_model_for
from .errors import DEFAULT_MAX_SKIP, CorruptSampleError, require_paths
from .files import load_json_list, occlusion_from_info, read_synth_info
from .sample import DEFAULT_INPUT_SIZE, RawSample

#: the four image versions of the training split, in file-index order (FreiHAND ``sample_version``).
VERSIONS = ("gs", "hom", "sample", "auto")
#: the released number of unique training samples (the loader derives N from the files).
RELEASE_TRAIN_SIZE = 32560
IMAGE_SIZE = (224, 224)

LAYOUT = """\
  <root>/training/rgb/00000000.jpg ...    N x 4 versions (file index = id + N k)
  <root>/training_K.json, training_mano.json, training_xyz.json [, training_verts.json]
  <root>/evaluation/rgb/00000000.jpg ...  evaluation images (gs version only)
  <root>/evaluation_K.json [, evaluation_xyz.json, evaluation_verts.json, evaluation_mano.json]"""

_SPLITS = {"train": "training", "training": "training", "test": "evaluation", "eval": "evaluation",
           "evaluation": "evaluation"}


def mano_root(mano, K) -> np.ndarray:
    """F joint 9 (middle MCP) from the MANO vector's uv_root and scale (FreiHAND ``recover_root``).

    Z = f / s with f = (f_x + f_y) / 2, X = (u - p_x) / s, Y = (v - p_y) / s (FreiHAND
    ``recover_root``;
    book/datasets_and_metrics.md, section The MANO vector).

    Args:
        mano: (..., 61) MANO vectors. K: (..., 3, 3).
    Returns:
        (..., 3) metres, camera frame.
    """
    mano = np.asarray(mano, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    if mano.shape[-1] != 61 or K.shape[-2:] != (3, 3):
        raise ValueError(f"mano_root: expected MANO vectors (..., 61) and K (..., 3, 3), got {mano.shape}, {K.shape}")
    u, v, s = mano[..., 58], mano[..., 59], mano[..., 60]
    f = (K[..., 0, 0] + K[..., 1, 1]) / 2
    return np.stack([(u - K[..., 0, 2]) / s, (v - K[..., 1, 2]) / s, f / s], -1)


def mano_mesh(mano, K, layer) -> dict:
    """The camera-frame mesh and joints of FreiHAND MANO vectors: the posed hand translated so that
    F joint 9 lands on :func:`mano_root` (book/datasets_and_metrics.md, section The MANO vector).

    Args:
        mano: (B, 61). K: (B, 3, 3). layer: a ``HandLayer`` (fingertips "freihand" to match the GT).
    Returns:
        dict "vertices" (B, 778, 3), "joints" (B, 21, 3), "transl" (B, 3), numpy float64, metres.
    """
    import torch
    mano = np.asarray(mano, dtype=np.float64).reshape(-1, 61)
    K = np.asarray(K, dtype=np.float64).reshape(-1, 3, 3)
    with torch.no_grad():
        out = layer(torch.tensor(mano[:, :48], dtype=torch.float64), torch.tensor(mano[:, 48:58], dtype=torch.float64))
    t = mano_root(mano, K) - out["joints"][:, 9].numpy()
    return {"vertices": out["vertices"].numpy() + t[:, None], "joints": out["joints"].numpy() + t[:, None],
            "transl": t}


class FreiHAND(HandDataset):
    """FreiHAND v2 as a ``torch.utils.data.Dataset`` of sample dictionaries (``handssca.data``).

    Args:
        root: the dataset folder (``FreiHAND_pub_v2``, or a synthetic folder in its layout).
        split: "train" (= "training") or "test" (= "evaluation").
        input_size: S, the crop size (224 in the paper profile).
        train: augment and crop from the 2D joints; default: True for "train", False for "test".
        versions: the training image versions to use (default all four, as common practice;
            HandSSCA's own loader reads only "gs"). The evaluation split has "gs" only.
        max_skip: stop when more than this share of samples is corrupt.
        cache_dir: where the parsed large JSON files are kept (default ``$HANDSSCA_CACHE_DIR/data``).
        hand_model: the right hand model for :meth:`mano_mesh` (default ``load_hand_model()``);
            used only when a split has no ``*_verts.json`` file.

    The sample's ``sample_id`` is the 8-digit file index; ``index`` runs over
    ``len(versions) x`` (unique samples with readable annotations), version-major.
    """

    name = "FreiHAND"
    fingertips = "freihand"
    train_box = "joints"
    test_box = "image"

    def __init__(self, root, split: str = "train", input_size: int = DEFAULT_INPUT_SIZE, train: bool | None = None,
                 versions: Sequence[str] | None = None, max_skip: float = DEFAULT_MAX_SKIP, cache_dir=None,
                 hand_model=None):
        if split not in _SPLITS:
            raise ValueError(f"FreiHAND: split must be one of {sorted(_SPLITS)}, got {split!r}")
        self.root = Path(root)
        self.split = _SPLITS[split]
        self.input_size = int(input_size)
        self.train = (self.split == "training") if train is None else bool(train)
        self.augment = self.train
        if versions is None:
            versions = VERSIONS if self.split == "training" else ("gs",)
        versions = tuple(versions)
        bad = [v for v in versions if v not in VERSIONS]
        if bad or not versions:
            raise ValueError(f"FreiHAND: versions must be a non-empty subset of {VERSIONS}, got {versions}")
        if self.split == "evaluation" and versions != ("gs",):
            raise ValueError("FreiHAND: the evaluation split has only the 'gs' image version")
        self.versions = versions
        self._hand_model = hand_model
        self._layer = None

        s = self.split
        required = [self.root, self.root / s / "rgb", self.root / f"{s}_K.json"]
        if s == "training":
            required += [self.root / f"{s}_mano.json", self.root / f"{s}_xyz.json"]
        require_paths(required, "FreiHAND", LAYOUT)
        self.K, bad_k = self._load(f"{s}_K.json", (3, 3), cache_dir)
        self.N = len(self.K)
        if self.N == 0:
            raise ValueError(f"FreiHAND: {self.root / f'{s}_K.json'} holds no samples")
        self.xyz = self.mano = self.verts = None
        bad = bad_k.copy()
        exact = np.float64
        for attr, fname, shape, dtype in (("xyz", "xyz", (21, 3), exact), ("mano", "mano", (61,), np.float32),
                                          ("verts", "verts", (778, 3), exact if s == "evaluation" else np.float32)):
            p = self.root / f"{s}_{fname}.json"
            if p.exists():
                arr, b = self._load(p.name, shape, cache_dir, dtype)
                if len(arr) != self.N:
                    raise ValueError(f"FreiHAND: {p} has {len(arr)} entries but {s}_K.json has {self.N}; "
                                     "the annotation files must describe the same samples")
                setattr(self, attr, arr)
                bad |= b
        self.has_gt = self.xyz is not None and self.mano is not None
        # every requested version must be present: check its first and last file
        rgb = self.root / s / "rgb"
        require_paths([rgb / f"{k * self.N + i:08d}.jpg" for k in self._version_ids() for i in (0, self.N - 1)],
                      "FreiHAND", LAYOUT)

        self._init_skips(self.N, max_skip)
        if self.split == "training":  # unreadable annotations: those ids are left out, counted
            self.ids = np.flatnonzero(~bad)
        else:  # evaluation keeps every sample (a submission needs them all); bad ones lack 3D
            self.ids = np.arange(self.N)
        self._bad = bad
        for i in np.flatnonzero(bad):
            self.skips.record(int(i), f"{int(i):08d}", "annotation entry missing or malformed")
        info = read_synth_info(self.root)  # synthetic data: occlusion of each (gs) image
        self.occlusion = occlusion_from_info(info, [f"{s}/rgb/{i:08d}.jpg" for i in range(self.N)])

    # ------------------------------------------------------------------ files
    def _load(self, name, shape, cache_dir, dtype=np.float32):
        try:
            return load_json_list(self.root / name, shape, cache_dir=cache_dir, dtype=dtype)
        except ValueError as e:
            raise ValueError(f"FreiHAND: {e}; expected the official layout:\n{LAYOUT}") from None

    def _version_ids(self) -> list[int]:
        return [VERSIONS.index(v) for v in self.versions]

    # ------------------------------------------------------------------ indexing
    def __len__(self) -> int:
        return len(self.ids) * len(self.versions)

    def locate(self, index: int) -> tuple[int, int]:
        """(unique sample id in 0..N-1, file index = id + N k) of a dataset index."""
        n = len(self.ids)
        k = self._version_ids()[index // n]
        i = int(self.ids[index % n])
        return i, i + self.N * k

    def sample_id(self, index: int) -> str:
        """The 8-digit file index of the image (``%08d``)."""
        return f"{self.locate(index)[1]:08d}"

    def skip_key(self, index: int) -> int:
        """The unique sample id."""
        return self.locate(index)[0]  # a corrupt file counts once per unique sample

    # ------------------------------------------------------------------ samples
    def raw(self, index: int) -> RawSample:
        """The annotation of a dataset index: camera frame, F order, MANO offsets (used as stored)."""
        i, file_index = self.locate(index)
        raw = RawSample(image_path=str(self.root / self.split / "rgb" / f"{file_index:08d}.jpg"),
                        image_size=IMAGE_SIZE, K=np.asarray(self.K[i], dtype=np.float64),
                        occlusion=float(self.occlusion[i]), sample_id=f"{file_index:08d}")
        if not np.all(np.isfinite(raw.K)):
            raise CorruptSampleError(f"{self.split}_K.json entry {i} is malformed")
        if self.has_gt and not self._bad[i]:
            xyz = np.asarray(self.xyz[i], dtype=np.float64)
            mano = np.asarray(self.mano[i], dtype=np.float64)
            raw.joints3d, raw.root = xyz, xyz[0].copy()
            raw.pose, raw.shape = mano[:48], mano[48:58]
            if self.verts is not None:
                raw.vertices = np.asarray(self.verts[i], dtype=np.float64)
            else:
                raw.vertices = self.mano_mesh(i)["vertices"]
        return raw

    @property
    def layer(self):
        """The ``HandLayer`` (FreiHAND fingertips) used for :meth:`mano_mesh` (built on first use)."""
        if self._layer is None:
            from handssca.hand import HandLayer
            self._layer = HandLayer(hand_model_for(self.root, True, self._hand_model), fingertips="freihand").double()
        return self._layer

    def mano_mesh(self, i: int) -> dict:
        """The mesh of unique sample ``i`` from its MANO vector alone (:func:`mano_mesh`)."""
        if self.mano is None:
            raise ValueError(f"FreiHAND: {self.split}_mano.json is not present in {self.root}")
        out = mano_mesh(np.asarray(self.mano[i])[None], np.asarray(self.K[i])[None], self.layer)
        return {k: v[0] for k, v in out.items()}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_layer"] = None  # rebuilt in each worker
        return state

    # ------------------------------------------------------------------ evaluation
    def to_protocol(self, indices, joints, vertices, add_root: bool | None = None) -> dict:
        """Turn predictions into FreiHAND's protocol inputs: evaluation index order, camera frame.

        Args:
            indices: (B,) the samples' ``index`` values (each unique sample exactly once).
            joints: (B, 21, 3) root-relative F-order joints, metres, as the network predicts them.
            vertices: (B, 778, 3) root-relative vertices.
            add_root: add the ground-truth wrist (``*_xyz.json``) so the unaligned errors are
                wrist-relative (as HO3D's protocol does); default: when the ground truth exists.
                Without it the output stays root-relative: only the aligned (PA, F-score) numbers
                are meaningful then, as with HandSSCA's own FreiHAND output.
        Returns:
            dict "joints" (N, 21, 3), "vertices" (N, 778, 3) in unique-sample order, "root_added".
        """
        idx, j, v = self.ordered_predictions(indices, joints, vertices)
        if len(self.versions) != 1:
            raise ValueError("FreiHAND.to_protocol: use a dataset with one image version (the evaluation split)")
        if add_root is None:
            add_root = self.xyz is not None
        if add_root:
            if self.xyz is None:
                raise ValueError(f"FreiHAND: add_root needs {self.split}_xyz.json in {self.root}")
            r = np.asarray(self.xyz, dtype=np.float64)[self.ids[idx], 0][:, None]
            w = j[:, :1]  # the predicted wrist onto the ground-truth wrist
            j, v = j - w + r, v - w + r
        return {"joints": j, "vertices": v, "root_added": bool(add_root)}

    def official_ground_truth(self, indices) -> dict | None:
        """The ground truth of samples as FreiHAND's ``eval.py`` reads it (float64, camera frame):
        "joints" (B, 21, 3) from ``*_xyz.json`` and "vertices" (B, 778, 3) from ``*_verts.json``
        (None when the split lacks either file), rows in the order of ``indices``."""
        if self.xyz is None or self.verts is None:
            return None
        ids = self.ids[np.asarray(indices, dtype=np.int64).reshape(-1) % len(self.ids)]
        return {"joints": np.asarray(self.xyz[ids], np.float64), "vertices": np.asarray(self.verts[ids], np.float64)}

    def write_submission(self, path, indices, joints, vertices, add_root: bool | None = None) -> Path:
        """Write ``pred.json`` for FreiHAND's ``eval.py`` (``handssca.submit.write_freihand_pred``).

        Args as :meth:`to_protocol`; the file holds every unique sample in index order (3,960 for the
        real evaluation split).
        """
        from handssca.submit import write_freihand_pred
        out = self.to_protocol(indices, joints, vertices, add_root)
        if not out["root_added"]:
            warnings.warn("FreiHAND submission without the wrist position: only the aligned metrics "
                          "(PA-MPJPE, PA-MPVPE, aligned F-scores) are meaningful", RuntimeWarning, stacklevel=2)
        return write_freihand_pred(path, out["joints"], out["vertices"], expected_count=self.N)


__all__ = ["FreiHAND", "VERSIONS", "mano_root", "mano_mesh"]
