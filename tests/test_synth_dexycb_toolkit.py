"""The DexYCB toolkit layout (``toolkit_layout=True``): what the official toolkit's
``DexYCBDataset`` checks and reads when it is constructed, re-implemented here from
book/datasets_and_metrics.md (DexYCB) and the toolkit's ``dex_ycb_toolkit/dex_ycb.py``, holds
on a synthetic folder; every frame it lists is a frame the generator writes; our loader reads
the folder with the toolkit's sample indices.

The whole folder is 8000 images (minutes to render): the fixture writes its static part (the
calibration, every sequence's meta.yml, the models) and renders the first five sequences' frames
with the generator's own code, as ``generate`` would."""
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from handssca.data import DexYCB
from handssca.data.synth.common import GENERATOR, Timer, write_info
from handssca.data.synth.dexycb import TOOLKIT_MIN_IMAGES, DexYCBWriter
from handssca.data.synth.scene import HandPoser

SUBJECTS = ["20200709-subject-01", "20200813-subject-02", "20200820-subject-03", "20200903-subject-04",
            "20200908-subject-05", "20200918-subject-06", "20200928-subject-07", "20201002-subject-08",
            "20201015-subject-09", "20201022-subject-10"]
SERIALS = ["836212060125", "839512060362", "840412060917", "841412060263", "932122060857", "932122060861",
           "932122061900", "932122062010"]
RENDERED = 5  # sequences: subject-01, trials 0-4 (train and val)


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def s0_selection(split: str):
    """Subjects, cameras and the sequence rule of s0 (spec 3.2)."""
    subjects = {"train": range(10), "val": range(2), "test": range(2, 10)}[split]
    rule = (lambda i: i % 5 != 4) if split == "train" else (lambda i: i % 5 == 4)
    return [SUBJECTS[s] for s in subjects], SERIALS, rule


def toolkit_construct(root: Path, split: str) -> dict:
    """The construction of ``DexYCBDataset('s0', split)`` as dex-ycb-toolkit's ``dex_ycb.py``
    builds it, its reads as
    assertions: the intrinsics of every camera of the split; per subject, the sorted sequence
    folders, exactly 100; per selected sequence, meta.yml (num_frames, ycb_ids, ycb_grasp_ind,
    mano_sides, mano_calib) and the subject's mano.yml betas; the sample list (sequence, camera,
    frame), every camera of the split for every frame, camera-major within a sequence."""
    subjects, serials, rule = s0_selection(split)
    intrinsics = {}
    for s in serials:
        c = _yaml(root / "calibration" / "intrinsics" / f"{s}_640x480.yml")["color"]
        intrinsics[s] = [float(c[k]) for k in ("fx", "fy", "ppx", "ppy")]
    sequences, mapping, sides = [], [], []
    for subject in subjects:
        names = sorted(os.listdir(root / subject))
        assert len(names) == 100, (subject, len(names))
        sequences += [f"{subject}/{n}" for i, n in enumerate(names) if rule(i)]
    for k, seq in enumerate(sequences):
        meta = _yaml(root / seq / "meta.yml")
        assert int(meta["num_frames"]) >= 1 and 0 <= meta["ycb_grasp_ind"] < len(meta["ycb_ids"])
        assert all(1 <= i <= 21 for i in meta["ycb_ids"]) and meta["mano_sides"][0] in ("right", "left")
        betas = _yaml(root / "calibration" / f"mano_{meta['mano_calib'][0]}" / "mano.yml")["betas"]
        assert len(betas) == 10
        sides.append(meta["mano_sides"][0])
        mapping += [(k, c, f) for c in range(len(serials)) for f in range(int(meta["num_frames"]))]
    return {"sequences": sequences, "serials": serials, "mapping": mapping, "sides": sides,
            "intrinsics": intrinsics}


def sample_files(root: Path, data: dict, index: int) -> list:
    """The colour, depth and label paths the toolkit forms for sample ``index``."""
    s, c, f = data["mapping"][index]
    d = root / data["sequences"][s] / data["serials"][c]
    return [d / f"color_{f:06d}.jpg", d / f"aligned_depth_to_color_{f:06d}.png", d / f"labels_{f:06d}.npz"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("dexycb-toolkit") / "DexYCB"
    poser = HandPoser()
    writer = DexYCBWriter(root, TOOLKIT_MIN_IMAGES, 0, poser, Timer(), toolkit_layout=True)
    root.mkdir(parents=True)
    # what generate() writes first: the folder's identity, with the hand model of its annotations
    write_info(root, {"generator": GENERATOR, "style": "dexycb", "complete": False,
                      "options": writer.options(), "hand_model": {"kind": poser.kind}})
    writer.write_static()
    units = writer.units()
    for unit in units:
        if unit.data[0] < RENDERED:
            writer.run(unit)
    return root, writer, units


def test_the_toolkit_construction_checks_pass(folder):
    root, _, _ = folder
    counts = {split: toolkit_construct(root, split) for split in ("train", "val", "test")}
    assert [len(counts[s]["sequences"]) for s in ("train", "val", "test")] == [800, 40, 160]
    assert [len(counts[s]["mapping"]) for s in ("train", "val", "test")] == [6400, 320, 1280]
    for data in counts.values():                         # both sides in every split, half and half
        assert data["sides"].count("left") == len(data["sides"]) // 2
    # one camera calibration per serial, the same for every subject
    assert len({tuple(v) for v in counts["train"]["intrinsics"].values()}) == 8


def test_every_frame_the_toolkit_lists_is_written(folder):
    root, writer, units = folder
    listed = set()
    for split in ("train", "val", "test"):
        data = toolkit_construct(root, split)
        listed |= {str(p) for i in range(len(data["mapping"])) for p in sample_files(root, data, i)}
    planned = {str(root / writer.seq_dir(q) / serial / name.format(f)) for q, f in (u.data for u in units)
               for serial in writer.layout(q)[0]
               for name in ("color_{:06d}.jpg", "aligned_depth_to_color_{:06d}.png", "labels_{:06d}.npz")}
    assert listed == planned and len(planned) == 3 * TOOLKIT_MIN_IMAGES
    written = {str(p) for p in root.rglob("*") if p.suffix in (".jpg", ".png", ".npz")}
    assert written and written <= planned and len(written) == 3 * 8 * RENDERED
    for q in range(RENDERED):       # trial i grasps object i // 5 + 1, as the recordings do
        meta = _yaml(root / writer.seq_dir(q) / "meta.yml")
        assert meta["serials"] == SERIALS and meta["ycb_ids"][meta["ycb_grasp_ind"]] == q // 5 + 1
        for serial in SERIALS:
            lab = np.load(root / writer.seq_dir(q) / serial / "labels_000000.npz")
            assert lab["joint_3d"].shape == (1, 21, 3) and lab["pose_y"].shape == (len(meta["ycb_ids"]), 3, 4)


def test_our_loader_reads_it_with_the_toolkit_indices(folder):
    root, _, _ = folder
    for split, expect in (("train", 4 * 8), ("val", 8)):
        with warnings.catch_warnings():  # the frames not rendered here count as unreadable
            warnings.simplefilter("ignore")
            ds = DexYCB(root, "s0", split, max_skip=1.0, cache_dir=False)
        assert len(ds) == expect
        data = toolkit_construct(root, split)
        assert np.array_equal(ds.toolkit_index, np.arange(expect))
        for i in range(len(ds)):
            assert Path(ds.paths(i)[1]) == sample_files(root, data, int(ds.toolkit_index[i]))[2]
        sample, _ = ds.get(0, augment=False)
        assert sample["has_3d"] and sample["joints3d"].shape == (21, 3)


def test_toolkit_layout_arguments_are_checked(tmp_path):
    from handssca.data.synth import generate
    with pytest.raises(ValueError, match="multiple of 8 and at least 8000"):
        generate("dexycb", tmp_path / "a", 400, toolkit_layout=True, show_progress=False)
    with pytest.raises(ValueError, match="toolkit_layout applies to style 'dexycb' only"):
        generate("ho3d", tmp_path / "b", 400, toolkit_layout=True, show_progress=False)
