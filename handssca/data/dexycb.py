"""DexYCB: the official layout and the toolkit's splits, read as released
(book/datasets_and_metrics.md, section DexYCB; dex-ycb-toolkit ``dex_ycb.py``).

Layout (root folder, ``$DEX_YCB_DIR``)::

    <subject>/<sequence>/meta.yml                 serials, num_frames, mano_sides, mano_calib, ...
    <subject>/<sequence>/<serial>/color_%06d.jpg  640 x 480
    <subject>/<sequence>/<serial>/labels_%06d.npz joint_3d [1,21,3] (m, OpenCV, F order),
                                                  joint_2d [1,21,2] (px), pose_m [1,51]
    calibration/intrinsics/<serial>_640x480.yml   color: {fx, fy, ppx, ppy}
    calibration/mano_<name>/mano.yml              betas (10)

Subjects are the ten ``YYYYMMDD-subject-NN`` folders in the toolkit's order, sequences are the
sorted folders of a subject, cameras the eight serials in the toolkit's order (a sequence's
``meta.yml`` lists the cameras that recorded it: all eight in the real data, fewer in synthetic
folders). Subject folders absent from a partial download are left out with a warning. The setups s0-s3
and splits train/val/test select subjects, cameras and sequence numbers exactly as the toolkit's
``DexYCBDataset`` (s0: split by trial, i mod 5 == 4 for val/test); the toolkit's sample index
(subject, sequence, camera, frame in that nesting, every frame counted) is kept for the result file.

Conventions, each applied once:

- ``pose_m[0, :48]`` = 3 global values + 45 PCA coefficients for flat_hand_mean=False:
  axis-angle offsets = coefficients x ``hands_components`` of that side's MANO
  (``handssca.hand.pca_to_axis_angle``).
- ``pose_m[0, 48:51]`` is manopth's translation: added to the whole posed mesh, V = M(theta,
  beta) + t, so the wrist is J0(beta) + t, not t (pitfall 16). 3D is already metres, OpenCV frame.
- Frames without a hand label (``joint_3d`` all -1 or ``pose_m`` all 0) are left out (pitfall 12).
- Left hands (``mano_sides[0] == 'left'``, left MANO) are mirrored into right hands by
  :func:`handssca.data.sample.make_sample` (``is_left`` set); :func:`handssca.data.unmirror`
  maps predictions back (HandOccNet; book/datasets_and_metrics.md, section DexYCB in HandOccNet
  and HandSSCA).
- The ground-truth fingertips are manopth's (``fingertips`` = "manopth").

Crops: the box of the ground-truth 2D joints x1.5 at training and at test time, the whole image
when that box is degenerate (HandOccNet).
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from .dataset import HandDataset, hand_model_for
from .errors import DEFAULT_MAX_SKIP, CorruptSampleError, require_paths
from .files import (as_array, cache_folder, listdir_sorted, load_npz, load_yaml, occlusion_from_info,
                    read_synth_info)
from .geometry import unmirror
from .sample import DEFAULT_INPUT_SIZE, RawSample

SUBJECTS = (
    "20200709-subject-01", "20200813-subject-02", "20200820-subject-03", "20200903-subject-04",
    "20200908-subject-05", "20200918-subject-06", "20200928-subject-07", "20201002-subject-08",
    "20201015-subject-09", "20201022-subject-10",
)
SERIALS = (
    "836212060125", "839512060362", "840412060917", "841412060263",
    "932122060857", "932122060861", "932122061900", "932122062010",
)
IMAGE_SIZE = (640, 480)
SETUPS = ("s0", "s1", "s2", "s3")
SPLITS = ("train", "val", "test")
INDEX_VERSION = 2

LAYOUT = """\
  <root>/<YYYYMMDD-subject-NN>/<YYYYMMDD_HHMMSS>/meta.yml
  <root>/<subject>/<sequence>/<serial>/color_000000.jpg, labels_000000.npz, ...
  <root>/calibration/intrinsics/<serial>_640x480.yml
  <root>/calibration/mano_<name>/mano.yml"""

_ALL10, _ALL8 = list(range(10)), list(range(8))


def split_selection(setup: str, split: str):
    """(subject indices, camera indices, sequence rule) of a toolkit setup and split.

    The rule takes the sequence number i (0-based, within its subject) and says whether it belongs
    to the split; the toolkit's ``DexYCBDataset.__init__`` (book/datasets_and_metrics.md, section
    The S0 split).
    """
    if setup not in SETUPS or split not in SPLITS:
        raise ValueError(f"DexYCB: setup must be one of {SETUPS} and split one of {SPLITS}, got {setup!r}, {split!r}")
    if setup == "s0":  # seen subjects, cameras, objects; split by trial
        subj = {"train": _ALL10, "val": [0, 1], "test": list(range(2, 10))}[split]
        rule = (lambda i: i % 5 != 4) if split == "train" else (lambda i: i % 5 == 4)
        return subj, _ALL8, rule
    if setup == "s1":  # unseen subjects
        subj = {"train": [0, 1, 2, 3, 4, 5, 9], "val": [6], "test": [7, 8]}[split]
        return subj, _ALL8, (lambda i: True)
    if setup == "s2":  # unseen cameras
        cams = {"train": list(range(6)), "val": [6], "test": [7]}[split]
        return _ALL10, cams, (lambda i: True)
    groups = {"train": None, "val": (3, 19), "test": (7, 11, 15)}[split]  # s3: unseen objects
    if groups is None:
        return _ALL10, _ALL8, (lambda i: i // 5 not in (3, 7, 11, 15, 19))
    return _ALL10, _ALL8, (lambda i: i // 5 in groups)


def intrinsics_matrix(yml: dict, where: str = "") -> np.ndarray:
    """K (3, 3) from a ``calibration/intrinsics/*.yml`` mapping (its ``color`` entry)."""
    c = yml.get("color")
    try:
        return np.array([[float(c["fx"]), 0.0, float(c["ppx"])], [0.0, float(c["fy"]), float(c["ppy"])],
                         [0.0, 0.0, 1.0]])
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"DexYCB: {where} has no color: {{fx, fy, ppx, ppy}}") from None


def is_labelled(joint_3d, pose_m) -> tuple[bool, bool]:
    """(valid for HandOccNet: a joint_3d and a pose_m; valid for the toolkit: a joint_3d)."""
    has_joints = not np.all(np.asarray(joint_3d) == -1)
    return has_joints and not np.all(np.asarray(pose_m) == 0), has_joints


class DexYCB(HandDataset):
    """DexYCB as a ``torch.utils.data.Dataset`` of sample dictionaries (``handssca.data``).

    Args:
        root: the dataset folder (or a synthetic folder in its layout).
        setup: "s0" (the paper's), "s1", "s2" or "s3". split: "train", "val" or "test".
        input_size: S. train: augment (default: True for "train").
        max_skip: stop when more than this share of samples is corrupt.
        hand_models: (right, left) hand models (default ``load_hand_model(is_rhand=...)``).
        cache_dir: where the list of labelled frames is kept after the first scan (default
            ``$HANDSSCA_CACHE_DIR/data``); False scans every time and writes nothing.

    Attributes:
        toolkit_index: (N,) each sample's index in the toolkit's ``DexYCBDataset(setup, split)``.
    """

    name = "DexYCB"
    fingertips = "manopth"
    train_box = "joints"
    test_box = "joints"

    def __init__(self, root, setup: str = "s0", split: str = "train", input_size: int = DEFAULT_INPUT_SIZE,
                 train: bool | None = None, max_skip: float = DEFAULT_MAX_SKIP, hand_models=None, cache_dir=None):
        self.root = Path(root)
        self.setup, self.split = setup, split
        subj, cams, rule = split_selection(setup, split)
        self.input_size = int(input_size)
        self.train = (split == "train") if train is None else bool(train)
        self.augment = self.train
        self._hand_models = hand_models
        self._layers = None
        self.serials = [SERIALS[c] for c in cams]
        self.subjects = [SUBJECTS[s] for s in subj]
        calib = self.root / "calibration"
        require_paths([self.root, calib / "intrinsics"] +
                      [calib / "intrinsics" / f"{s}_640x480.yml" for s in self.serials], "DexYCB", LAYOUT)
        present = [s for s in self.subjects if (self.root / s).is_dir()]
        if not present:  # not one subject of the split: name the first one
            require_paths([self.root / s for s in self.subjects], "DexYCB", LAYOUT)
        self.synthetic = read_synth_info(self.root) is not None
        if len(present) < len(self.subjects) and not self.synthetic:
            # the real dataset comes as one archive per subject: a partial download is read, but
            # the toolkit's sample indices (the result file) need every subject of the split
            missing = [s for s in self.subjects if s not in present]
            warnings.warn(f"DexYCB: {len(missing)} subject folders of {setup}/{split} are missing (first "
                          f"{self.root / missing[0]}); reading the others. The toolkit indices of the result "
                          "file are only right with every subject present", RuntimeWarning, stacklevel=2)
        self.K = {}
        for s in self.serials:
            p = calib / "intrinsics" / f"{s}_640x480.yml"
            try:
                self.K[s] = intrinsics_matrix(load_yaml(p), str(p))
            except CorruptSampleError as e:
                raise ValueError(f"DexYCB: {e}") from None
        # the sequences of the split, with their meta data (the toolkit lists a subject's sequences
        # sorted by name and asserts there are 100; a partial or synthetic folder may have fewer)
        self.sequences, self.sides, self.betas, self.cameras, frames = [], [], [], [], []
        for subject in present:
            names = [n for n in listdir_sorted(self.root / subject) if (self.root / subject / n).is_dir()]
            if not names:
                raise ValueError(f"DexYCB: {self.root / subject} holds no sequence folder; expected:\n{LAYOUT}")
            for i, n in enumerate(names):
                if rule(i):
                    self._add_sequence(f"{subject}/{n}", frames)
        if not self.sequences:
            raise ValueError(f"DexYCB: no sequence of {setup}/{split} in {self.root}")
        self._frames = frames
        self._index, n_corrupt, toolkit_only = self._scan(cache_dir)
        self.toolkit_index = self._index[:, 3].copy()
        if toolkit_only:
            warnings.warn(f"DexYCB: {toolkit_only} frames have joint_3d but no pose_m; they are left out, "
                          "while the toolkit evaluates them", RuntimeWarning, stacklevel=2)
        self._init_skips(len(self._index) + len(n_corrupt), max_skip)
        for k, (key, sid, reason) in enumerate(n_corrupt):
            self.skips.record(len(self._index) + k, sid, reason)
        info = read_synth_info(self.root)  # synthetic data: occlusion of each image
        self.occlusion = occlusion_from_info(
            info, [self.paths(i)[0].relative_to(self.root).as_posix() for i in range(len(self))])

    # ------------------------------------------------------------------ scanning
    def _add_sequence(self, seq: str, frames: list) -> None:
        meta_file = self.root / seq / "meta.yml"
        require_paths([meta_file], "DexYCB", LAYOUT)
        try:
            meta = load_yaml(meta_file)
            n = int(meta["num_frames"])
            side = str(meta["mano_sides"][0])
            calib = str(meta["mano_calib"][0])
        except (CorruptSampleError, KeyError, IndexError, TypeError, ValueError) as e:
            raise ValueError(f"DexYCB: {meta_file} lacks num_frames / mano_sides / mano_calib ({e})") from None
        recorded = meta.get("serials", list(SERIALS))  # the real data always lists all eight
        if not isinstance(recorded, list):
            raise ValueError(f"DexYCB: {meta_file}: serials must be a list of camera serials")
        if side not in ("right", "left"):
            raise ValueError(f"DexYCB: {meta_file}: mano_sides[0] is {side!r}, expected 'right' or 'left'")
        mano_file = self.root / "calibration" / f"mano_{calib}" / "mano.yml"
        require_paths([mano_file], "DexYCB", LAYOUT)
        try:
            betas = as_array(load_yaml(mano_file).get("betas"), (10,), f"{mano_file}: betas")
        except CorruptSampleError as e:
            raise ValueError(f"DexYCB: {e}") from None
        self.sequences.append(seq)
        self.sides.append(side)
        self.betas.append(betas)
        self.cameras.append({str(x) for x in recorded})
        frames.append(n)

    def _scan(self, cache_dir):
        """Find the labelled frames (cached by the meta files' state); count unreadable labels."""
        key_src = [str(self.root.resolve()), self.setup, self.split, str(INDEX_VERSION)]
        for seq in self.sequences:
            st = (self.root / seq / "meta.yml").stat()
            key_src.append(f"{seq}|{st.st_size}|{st.st_mtime_ns}")
        key = hashlib.sha1("\n".join(key_src).encode()).hexdigest()[:20]
        cache = None if cache_dir is False else cache_folder(cache_dir) / "dexycb" / f"{self.setup}_{self.split}_{key}.json"
        if cache is not None and cache.exists():
            try:
                data = json.loads(cache.read_text())
                return (np.asarray(data["index"], dtype=np.int64).reshape(-1, 4),
                        [tuple(c) for c in data["corrupt"]], int(data["toolkit_only"]))
            except (OSError, ValueError, KeyError):
                pass
        from handssca.utils import progress
        rows, corrupt, toolkit_only, t = [], [], 0, 0
        total = sum(n * len(self.serials) for n in self._frames)
        bar = progress(total=total, desc=f"DexYCB {self.setup}/{self.split}: labelled frames", leave=False)
        for s, seq in enumerate(self.sequences):
            for c, serial in enumerate(self.serials):
                if serial not in self.cameras[s]:  # the toolkit counts every camera's frames
                    t += self._frames[s]
                    bar.update(self._frames[s])
                    continue
                for f in range(self._frames[s]):
                    label = self.root / seq / serial / f"labels_{f:06d}.npz"
                    try:
                        z = load_npz(label, ("joint_3d", "pose_m"))
                        ok, ok_toolkit = is_labelled(z["joint_3d"], z["pose_m"])
                        if ok:
                            rows.append((s, c, f, t))
                        toolkit_only += int(ok_toolkit and not ok)
                    except CorruptSampleError as e:
                        corrupt.append((t, f"{seq}/{serial}/{f:06d}", str(e)))
                    t += 1
                bar.update(self._frames[s])
        bar.close()
        index = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
        if cache is not None:
            from handssca.utils import write_json_atomic
            write_json_atomic(cache, {"index": index.tolist(), "corrupt": corrupt, "toolkit_only": toolkit_only},
                              indent=None)
        return index, corrupt, toolkit_only

    # ------------------------------------------------------------------ samples
    def __len__(self) -> int:
        return len(self._index)

    def sample_id(self, index: int) -> str:
        """``<subject>/<sequence>/<serial>/<frame %06d>``."""
        s, c, f, _ = self._index[index]
        return f"{self.sequences[s]}/{self.serials[c]}/{f:06d}"

    def side(self, index: int) -> str:
        """The hand of a sample as annotated: "right" or "left" (left hands are mirrored in samples)."""
        return self.sides[self._index[index][0]]

    def paths(self, index: int) -> tuple[Path, Path]:
        """(colour image, label file) of a sample."""
        s, c, f, _ = self._index[index]
        d = self.root / self.sequences[s] / self.serials[c]
        return d / f"color_{f:06d}.jpg", d / f"labels_{f:06d}.npz"

    def layer(self, side: str):
        """The ``HandLayer`` of a side ("right"/"left"; manopth fingertips, float64), built on first use."""
        if self._layers is None:
            from handssca.hand import HandLayer
            given = self._hand_models or (None, None)
            models = (hand_model_for(self.root, True, given[0]), hand_model_for(self.root, False, given[1]))
            self._layers = {side: HandLayer(m, fingertips="manopth").double()
                            for side, m in zip(("right", "left"), models)}
        return self._layers[side]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_layers"] = None
        return state

    def raw(self, index: int) -> RawSample:
        """One labelled frame: PCA pose -> axis-angle offsets, mesh from MANO with manopth's translation."""
        import torch
        from handssca.hand import pca_to_axis_angle
        s, c, f, _ = self._index[index]
        img, label = self.paths(index)
        z = load_npz(label, ("joint_3d", "joint_2d", "pose_m"))
        joints = as_array(z["joint_3d"], (21, 3), f"{label}: joint_3d")
        uv = as_array(z["joint_2d"], (21, 2), f"{label}: joint_2d")
        pose_m = as_array(z["pose_m"], (51,), f"{label}: pose_m")
        side, betas = self.sides[s], self.betas[s]
        layer = self.layer(side)
        pose = pca_to_axis_angle(pose_m[None, :48], layer)[0]
        with torch.no_grad():
            out = layer(torch.tensor(pose[None]), torch.tensor(betas[None]), torch.tensor(pose_m[None, 48:51]))
        occ = float(self.occlusion[index])
        return RawSample(image_path=str(img), image_size=IMAGE_SIZE, K=self.K[self.serials[c]], joints3d=joints,
                         vertices=out["vertices"][0].numpy(), pose=pose, shape=betas.copy(), root=joints[0].copy(),
                         joints2d=uv, is_left=side == "left", occlusion=occ, sample_id=self.sample_id(index))

    def placeholder(self, index: int) -> RawSample:
        """A test sample whose label file is unreadable: no annotation, the wrist NaN."""
        s = self._index[index][0]
        return RawSample(image_path="", image_size=IMAGE_SIZE, K=np.eye(3), is_left=self.sides[s] == "left",
                         sample_id=self.sample_id(index))

    # ------------------------------------------------------------------ evaluation
    def roots(self) -> np.ndarray:
        """(N, 3) the ground-truth wrist of every sample (``joint_3d[0]``), camera frame."""
        out = np.empty((len(self), 3))
        for i in range(len(self)):
            label = self.paths(i)[1]
            out[i] = as_array(load_npz(label, ("joint_3d",))["joint_3d"], (21, 3), f"{label}: joint_3d")[0]
        return out

    def to_protocol(self, indices, joints, vertices=None) -> dict:
        """Predictions -> the toolkit's inputs (HandOccNet's ``evaluate``;
        book/datasets_and_metrics.md, section Which root, which alignment): predicted
        root-relative joints of mirrored left hands un-mirrored (x -> -x), then the ground-truth
        wrist added.

        Args:
            indices: (B,) the samples' ``index`` (each sample exactly once).
            joints: (B, 21, 3) root-relative F-order joints, metres, in the sample's frame.
            vertices: (B, 778, 3) or None, treated the same way.
        Returns:
            dict "joints" (N, 21, 3) absolute camera frame, "vertices" (or None), "toolkit_index"
            (N,), "is_left" (N,), in dataset order.
        """
        n = len(np.asarray(indices).reshape(-1))
        placeholder = np.zeros((n, 1, 3))  # without vertices: only the joints are ordered and checked
        _, j, v = self.ordered_predictions(indices, joints, vertices if vertices is not None else placeholder)
        is_left = np.array([self.sides[s] == "left" for s in self._index[:, 0]], dtype=bool)
        r = self.roots()[:, None]
        wrist = j[:, :1]  # centre on the predicted wrist first (HandOccNet's step 1)
        j = unmirror(j - wrist, is_left) + r
        v = unmirror(v - wrist, is_left) + r if vertices is not None else None
        return {"joints": j, "vertices": v, "toolkit_index": self.toolkit_index.copy(), "is_left": is_left}

    def write_submission(self, path, indices, joints) -> Path:
        """Write the toolkit's HPE result file (``handssca.submit.write_dexycb_results``: toolkit
        index + 63 values in mm per line) for ``hpe_eval.py``."""
        from handssca.submit import write_dexycb_results
        out = self.to_protocol(indices, joints)
        return write_dexycb_results(path, out["toolkit_index"], out["joints"])


__all__ = ["DexYCB", "SUBJECTS", "SERIALS", "split_selection", "intrinsics_matrix", "is_labelled"]
