"""The generator's folder handling: refusal to overwrite, --overwrite, completed runs, resuming a
killed run to the same bytes, the command line, and the reproducible .npz writer."""
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from handssca.__main__ import main
from handssca.data.synth import generate, read_info
from handssca.data.synth.common import npz_bytes
from handssca.data.synth.freihand import FreiHANDWriter


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_refuses_foreign_or_different_folders_and_overwrites_only_its_own(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="not empty"):
            generate("freihand", foreign, 1, seed=0, n_eval=0, overwrite=overwrite, show_progress=False)
    assert (foreign / "notes.txt").read_text() == "mine" and len(list(foreign.iterdir())) == 1
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError):
        generate("freihand", a_file, 1, show_progress=False)

    out = tmp_path / "ds"
    first = generate("freihand", out, 1, seed=0, n_eval=0, show_progress=False)
    assert first.generated == 1
    again = generate("freihand", out, 1, seed=0, n_eval=0, show_progress=False)  # complete: nothing to do
    assert again.generated == 0 and again.info == first.info
    before = _digest(out)
    for kwargs in ({"style": "freihand", "seed": 1}, {"style": "ho3d", "seed": 0}):
        with pytest.raises(FileExistsError, match="overwrite"):
            generate(kwargs["style"], out, 2, seed=kwargs["seed"], show_progress=False)
    assert _digest(out) == before
    replaced = generate("ho3d", out, 2, seed=0, overwrite=True, show_progress=False)
    assert replaced.generated == 2 and read_info(out)["style"] == "ho3d"
    assert not (out / "training").exists() and (out / "train.txt").exists()


def test_a_killed_run_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    generate("freihand", clean, 4, seed=2, n_eval=1, show_progress=False)

    out = tmp_path / "killed"
    real_run = FreiHANDWriter.run
    calls = {"n": 0}

    def dying_run(self, unit):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed while writing the third sample
        return real_run(self, unit)

    monkeypatch.setattr(FreiHANDWriter, "run", dying_run)
    with pytest.raises(KeyboardInterrupt):
        generate("freihand", out, 4, seed=2, n_eval=1, show_progress=False)
    info = read_info(out)
    assert info["complete"] is False and info["seed"] == 2
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*"))   # no half-written file
    assert not (out / "training_xyz.json").exists()                  # aggregates come last
    monkeypatch.setattr(FreiHANDWriter, "run", real_run)
    resumed = generate("freihand", out, 4, seed=2, n_eval=1, show_progress=False)
    assert resumed.units == 5 and resumed.generated == 3               # 2 were already done
    assert _digest(out) == _digest(clean)


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["data", "synth", "--style", "freihand", "--out", str(out), "--n", "1", "--seed", "0",
                 "--n-eval", "0"]) == 0
    assert "occlusion" in capsys.readouterr().out
    assert json.loads((out / "synth_info.json").read_text())["complete"]
    assert main(["data", "synth", "--style", "freihand", "--out", str(out), "--n", "1", "--seed", "9"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["data", "synth", "--style", "dexycb", "--out", str(tmp_path / "small"), "--n", "3"]) == 2
    assert "at least 10" in capsys.readouterr().err


def test_npz_bytes_are_reproducible_and_readable():
    arrays = {"seg": np.arange(12, dtype=np.uint8).reshape(3, 4), "pose_m": np.zeros((1, 51), np.float32)}
    data = npz_bytes(arrays)
    assert data == npz_bytes(arrays)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert {i.filename for i in zf.infolist()} == {"seg.npy", "pose_m.npy"}
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
    loaded = np.load(io.BytesIO(data))
    for k, v in arrays.items():
        assert np.array_equal(loaded[k], v) and loaded[k].dtype == v.dtype


def test_overwrite_deletes_only_the_generators_files_and_refuses_a_users(tmp_path, monkeypatch):
    from handssca.data.synth.common import MANIFEST_FILE, PARTIAL_DIR

    out = tmp_path / "ds"
    generate("freihand", out, 1, seed=0, n_eval=1, show_progress=False)
    listed = set((out / MANIFEST_FILE).read_text().splitlines())
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk - listed == {"synth_info.json", MANIFEST_FILE}  # every data file is listed
    # a user's file among the generated ones: the overwrite refuses, naming it, and deletes nothing
    mine = out / "training" / "rgb" / "my_photo.jpg"
    mine.write_bytes(b"mine")
    before = _digest(out)
    with pytest.raises(FileExistsError, match="training/rgb/my_photo.jpg"):
        generate("ho3d", out, 2, seed=0, overwrite=True, show_progress=False)
    assert _digest(out) == before
    assert main(["data", "synth", "--style", "freihand", "--out", str(out), "--n", "2",
                 "--seed", "0", "--overwrite"]) == 2
    assert mine.read_bytes() == b"mine" and _digest(out) == before
    # moved out of the folder, the overwrite goes ahead and leaves nothing of the old dataset
    mine.unlink()
    replaced = generate("ho3d", out, 2, seed=0, overwrite=True, show_progress=False)
    assert replaced.generated == 2 and not (out / "training").exists()

    # a killed generation (records, a temporary file of its own) is replaced as well
    real_run = FreiHANDWriter.run

    def dying_run(self, unit):
        self.files.bytes("training/rgb/00000000.jpg", b"partial")
        (self.out / "training" / "rgb" / ".00000001.jpg.abcd1234.tmp").write_bytes(b"half")
        self.files.manifest.claim("training/rgb/00000001.jpg")
        raise KeyboardInterrupt

    killed = tmp_path / "killed"
    monkeypatch.setattr(FreiHANDWriter, "run", dying_run)
    with pytest.raises(KeyboardInterrupt):
        generate("freihand", killed, 2, seed=0, n_eval=1, show_progress=False)
    monkeypatch.setattr(FreiHANDWriter, "run", real_run)
    (killed / PARTIAL_DIR).mkdir(exist_ok=True)
    (killed / PARTIAL_DIR / "00000000.json").write_text("{}")
    generate("ho3d", killed, 2, seed=0, overwrite=True, show_progress=False)
    assert not (killed / "training").exists() and (killed / "train.txt").exists()
