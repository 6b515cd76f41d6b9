"""HO-3D v2 / v3: the official layout, read as released
(book/datasets_and_metrics.md, section HO-3D).

Layout (root folder)::

    train.txt, evaluation.txt            "SEQ/FID" per line (evaluation.txt fixes the submission order)
    train/<SEQ>/rgb/<FID>.png (v2) | .jpg (v3)      640 x 480
    train/<SEQ>/meta/<FID>.pkl           handPose (48, absolute), handBeta (10), handTrans (3),
                                         handJoints3D (21, 3), camMat (3, 3); OpenGL frame, H order
    evaluation/<SEQ>/rgb/<FID>.*, evaluation/<SEQ>/meta/<FID>.pkl
                                         handJoints3D (3,) = the wrist only, handBoundingBox, camMat

Conversions, each applied exactly once (:func:`ho3d_to_opencv`):

- points: OpenGL -> OpenCV camera frame, X_cv = diag(1, -1, -1) X_gl;
- joints: H order -> F order (``HO3D_TO_FREIHAND``);
- MANO pose: absolute articulation (flat_hand_mean=True) -> offsets from hands_mean;
- MANO global rotation and translation: R_cv = diag(1, -1, -1) R_gl, and the translation
  recomputed about the shaped root joint J0, t_cv = diag(1, -1, -1)(J0 + t_gl) - J0
  (``handssca.hand.change_frame``).

The vertices are not in the files: they are the MANO mesh of the converted parameters (so they
need the real MANO for the real dataset). The ground-truth fingertips are HO3D's vertices
744/333/444/555/672 (``fingertips``). Crops: training the 2D joints' box x1.5 with augmentation;
testing ``handBoundingBox`` x1.5 (HandOccNet).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from handssca.hand.joints import HO3D_TO_FREIHAND, FREIHAND_TO_HO3D, OPENGL_TO_OPENCV

from .dataset import HandDataset, hand_model_for
from .errors import DEFAULT_MAX_SKIP, CorruptSampleError, require_paths
from .files import as_array, load_pickle, occlusion_from_info, read_synth_info
from .sample import DEFAULT_INPUT_SIZE, RawSample

IMAGE_SIZE = (640, 480)
EXTENSIONS = {"v2": ".png", "v3": ".jpg"}
_SPLITS = {"train": "train", "test": "evaluation", "eval": "evaluation", "evaluation": "evaluation"}

LAYOUT = """\
  <root>/train.txt, <root>/evaluation.txt          SEQ/FID per line
  <root>/train/<SEQ>/rgb/<FID>.png (v2) or .jpg (v3)
  <root>/train/<SEQ>/meta/<FID>.pkl
  <root>/evaluation/<SEQ>/rgb/<FID>.*, <root>/evaluation/<SEQ>/meta/<FID>.pkl"""


# ----------------------------------------------------------------------------------------------
# the conversions (pure functions, tested for an exact round trip)
# ----------------------------------------------------------------------------------------------
def _flip(points) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ OPENGL_TO_OPENCV.T


def ho3d_to_opencv(hand_pose, hand_trans, hand_beta, joints3d, layer) -> dict:
    """HO3D's hand annotation (OpenGL frame, H order, absolute pose) -> OpenCV frame, F order,
    MANO pose as offsets (book/datasets_and_metrics.md, section HO-3D annotations).

    Args:
        hand_pose: (48,) ``handPose`` (flat_hand_mean=True). hand_trans: (3,) ``handTrans``.
        hand_beta: (10,) ``handBeta``. joints3d: (21, 3) ``handJoints3D`` or None.
        layer: a HandModel or HandLayer (its hands_mean, J0(beta)).
    Returns:
        dict "pose" (48,), "transl" (3,), "shape" (10,), "joints3d" (21, 3) or None; float64.
    """
    import torch
    from handssca.hand import absolute_to_offset, change_frame
    pose = absolute_to_offset(np.asarray(hand_pose, dtype=np.float64).reshape(1, 48), layer)[0]
    beta = np.asarray(hand_beta, dtype=np.float64).reshape(1, -1)
    go, t = change_frame(torch.tensor(pose[None, :3]), torch.tensor(np.asarray(hand_trans, np.float64).reshape(1, 3)),
                         torch.tensor(beta), layer, torch.tensor(OPENGL_TO_OPENCV))
    pose = pose.copy()
    pose[:3] = go[0].numpy()
    j = None if joints3d is None else _flip(joints3d)[list(HO3D_TO_FREIHAND)]
    return {"pose": pose, "transl": t[0].numpy().astype(np.float64), "shape": beta[0], "joints3d": j}


def opencv_to_ho3d(pose, transl, shape, joints3d, layer) -> dict:
    """The inverse of :func:`ho3d_to_opencv` (diag(1, -1, -1) is its own inverse).

    Returns:
        dict "handPose" (48,) absolute, "handTrans" (3,), "handBeta" (10,), "handJoints3D" (21, 3)
        in H order, OpenGL frame (or None).
    """
    import torch
    from handssca.hand import change_frame, offset_to_absolute
    pose = np.asarray(pose, dtype=np.float64).reshape(48).copy()
    beta = np.asarray(shape, dtype=np.float64).reshape(1, -1)
    go, t = change_frame(torch.tensor(pose[None, :3]), torch.tensor(np.asarray(transl, np.float64).reshape(1, 3)),
                         torch.tensor(beta), layer, torch.tensor(OPENGL_TO_OPENCV))
    pose[:3] = go[0].numpy()
    pose = offset_to_absolute(pose[None], layer)[0]
    j = None if joints3d is None else _flip(np.asarray(joints3d)[list(FREIHAND_TO_HO3D)])
    return {"handPose": pose, "handTrans": t[0].numpy(), "handBeta": beta[0], "handJoints3D": j}


def read_split_list(path) -> list[str]:
    """``train.txt`` / ``evaluation.txt``: the ``SEQ/FID`` entries in file order."""
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


class HO3D(HandDataset):
    """HO-3D (v2 or v3) as a ``torch.utils.data.Dataset`` of sample dictionaries (``handssca.data``).

    Args:
        root: the dataset folder (or a synthetic folder in its layout).
        split: "train" or "evaluation" (= "test"); rows follow ``train.txt`` / ``evaluation.txt``.
        version: "v2" (PNG images), "v3" (JPG) or None (told from the first image).
        input_size: S. train: augment and crop from the 2D joints (default: True for "train").
        max_skip: stop when more than this share of samples is corrupt.
        hand_model: the right hand model for the pose conversion and the mesh (default
            ``load_hand_model()``; the real MANO for the real dataset).

    The evaluation split has no hand ground truth (``has_3d`` False) but its wrist (``root``), its
    hand box and its camera; :meth:`write_submission` writes ``pred.zip``.
    """

    name = "HO3D"
    fingertips = "ho3d"
    train_box = "joints"
    test_box = "dataset"

    def __init__(self, root, split: str = "train", version: str | None = None, input_size: int = DEFAULT_INPUT_SIZE,
                 train: bool | None = None, max_skip: float = DEFAULT_MAX_SKIP, hand_model=None):
        if split not in _SPLITS:
            raise ValueError(f"HO3D: split must be one of {sorted(_SPLITS)}, got {split!r}")
        if version is not None and version not in EXTENSIONS:
            raise ValueError(f"HO3D: version must be 'v2', 'v3' or None, got {version!r}")
        self.root = Path(root)
        self.split = _SPLITS[split]
        self.input_size = int(input_size)
        self.train = (self.split == "train") if train is None else bool(train)
        self.augment = self.train
        self._hand_model = hand_model
        self._layer = None
        listing = self.root / f"{self.split}.txt"
        require_paths([self.root, listing, self.root / self.split], "HO3D", LAYOUT)
        self.names = read_split_list(listing)
        if not self.names:
            raise ValueError(f"HO3D: {listing} lists no samples")
        bad = [n for n in self.names if n.count("/") != 1]
        if bad:
            raise ValueError(f"HO3D: {listing} line {self.names.index(bad[0]) + 1} is {bad[0]!r}, expected SEQ/FID")
        seq, fid = self.names[0].split("/")
        folder = self.root / self.split / seq
        if version is None:
            found = [v for v, ext in EXTENSIONS.items() if (folder / "rgb" / f"{fid}{ext}").exists()]
            version = found[0] if found else "v2"
        self.version = version
        self.ext = EXTENSIONS[version]
        require_paths([folder, folder / "rgb" / f"{fid}{self.ext}", folder / "meta" / f"{fid}.pkl"], "HO3D",
                      LAYOUT + f"\n  (version {version}: images are {self.ext})")
        self._init_skips(len(self.names), max_skip)
        info = read_synth_info(self.root)  # synthetic data: occlusion of each image
        self.occlusion = occlusion_from_info(
            info, [str(self.paths(i)[0].relative_to(self.root).as_posix()) for i in range(len(self.names))])

    def __len__(self) -> int:
        return len(self.names)

    def sample_id(self, index: int) -> str:
        """``SEQ/FID`` as in the split list."""
        return self.names[index]

    @property
    def layer(self):
        """The right-hand ``HandLayer`` (HO3D fingertips, float64), built on first use."""
        if self._layer is None:
            from handssca.hand import HandLayer
            self._layer = HandLayer(hand_model_for(self.root, True, self._hand_model), fingertips="ho3d").double()
        return self._layer

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_layer"] = None
        return state

    def paths(self, index: int) -> tuple[Path, Path]:
        """(image, meta) files of a sample."""
        seq, fid = self.names[index].split("/")
        d = self.root / self.split / seq
        return d / "rgb" / f"{fid}{self.ext}", d / "meta" / f"{fid}.pkl"

    def meta(self, index: int) -> dict:
        """The raw ``meta/<FID>.pkl`` of a sample (raises CorruptSampleError)."""
        return load_pickle(self.paths(index)[1])

    def raw(self, index: int) -> RawSample:
        """One sample converted to the OpenCV frame, F order and MANO offsets (module docstring)."""
        img, meta_file = self.paths(index)
        meta = self.meta(index)
        name = self.names[index]
        K = as_array(meta.get("camMat"), (3, 3), f"{meta_file}: camMat")
        raw = RawSample(image_path=str(img), image_size=IMAGE_SIZE, K=K, sample_id=name,
                        occlusion=float(self.occlusion[index]))
        if self.split == "evaluation":
            raw.root = _flip(as_array(meta.get("handJoints3D"), (3,), f"{meta_file}: handJoints3D"))
            raw.box = as_array(meta.get("handBoundingBox"), (4,), f"{meta_file}: handBoundingBox")
            return raw
        pose = as_array(meta.get("handPose"), (48,), f"{meta_file}: handPose")
        beta = as_array(meta.get("handBeta"), (10,), f"{meta_file}: handBeta")
        trans = as_array(meta.get("handTrans"), (3,), f"{meta_file}: handTrans")
        joints = as_array(meta.get("handJoints3D"), (21, 3), f"{meta_file}: handJoints3D")
        cv = ho3d_to_opencv(pose, trans, beta, joints, self.layer)
        raw.joints3d, raw.root = cv["joints3d"], cv["joints3d"][0].copy()
        raw.pose, raw.shape = cv["pose"], cv["shape"]
        raw.vertices = self.mesh(cv["pose"], cv["shape"], cv["transl"])
        return raw

    def mesh(self, pose, shape, transl) -> np.ndarray:
        """The MANO mesh (778, 3) of OpenCV-frame parameters (offsets), metres."""
        import torch
        with torch.no_grad():
            out = self.layer(torch.tensor(np.reshape(pose, (1, 48)), dtype=torch.float64),
                             torch.tensor(np.reshape(shape, (1, -1)), dtype=torch.float64),
                             torch.tensor(np.reshape(transl, (1, 3)), dtype=torch.float64))
        return out["vertices"][0].numpy()

    def placeholder(self, index: int) -> RawSample:
        """An evaluation sample whose meta file is unreadable: no box, no wrist (NaN)."""
        return RawSample(image_path="", image_size=IMAGE_SIZE, K=np.eye(3), sample_id=self.names[index])

    # ------------------------------------------------------------------ evaluation
    def roots(self) -> np.ndarray:
        """(N, 3) the ground-truth wrist of every sample, OpenCV frame (reads every meta file)."""
        out = np.full((len(self), 3), np.nan)
        for i in range(len(self)):
            meta_file = self.paths(i)[1]
            meta = self.meta(i)
            j = np.asarray(meta.get("handJoints3D"), dtype=np.float64)
            out[i] = _flip(j.reshape(-1, 3)[0])
            if not np.all(np.isfinite(out[i])):
                raise CorruptSampleError(f"{meta_file}: handJoints3D is malformed")
        return out

    def to_protocol(self, indices, joints, vertices) -> dict:
        """Predictions -> HO3D's protocol inputs before the submission's own conversion.

        Adds the ground-truth wrist of each sample (``handJoints3D`` of the meta file; HandOccNet's
        step 2; book/datasets_and_metrics.md, section HO-3D in HandOccNet and HandSSCA) to
        root-relative predictions; the frame stays OpenCV and the order F
        (:meth:`write_submission` applies OpenGL and H order).

        Args:
            indices: (B,) the samples' ``index`` (each sample exactly once).
            joints: (B, 21, 3) root-relative F-order joints, metres. vertices: (B, 778, 3).
        Returns:
            dict "joints", "vertices" (absolute, OpenCV, F order, split order), "names", "roots".
        """
        _, j, v = self.ordered_predictions(indices, joints, vertices)
        r = self.roots()
        shift = (r - j[:, 0])[:, None]
        return {"joints": j + shift, "vertices": v + shift, "names": list(self.names), "roots": r}

    def write_submission(self, path, indices, joints, vertices) -> Path:
        """Write ``pred.zip`` for HO3D's server or ``eval.py`` (``handssca.submit.write_ho3d_pred``:
        OpenGL frame, H order, ``evaluation.txt`` order; the official count is checked for the real
        dataset)."""
        from handssca.submit import HO3D_EVAL_SIZE, write_ho3d_pred
        if self.split != "evaluation":
            raise ValueError("HO3D.write_submission: needs the evaluation split")
        out = self.to_protocol(indices, joints, vertices)
        real = read_synth_info(self.root) is None
        version = self.version if real and len(self) == HO3D_EVAL_SIZE[self.version] else None
        if real and version is None:
            import warnings
            warnings.warn(f"HO3D: {len(self)} evaluation samples, the official {self.version} split has "
                          f"{HO3D_EVAL_SIZE[self.version]}", RuntimeWarning, stacklevel=2)
        return write_ho3d_pred(path, out["joints"], out["vertices"], out["names"],
                               self.root / "evaluation.txt", version=version)


__all__ = ["HO3D", "ho3d_to_opencv", "opencv_to_ho3d", "read_split_list"]
