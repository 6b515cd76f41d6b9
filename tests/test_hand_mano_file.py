"""Reading MANO's pickle without chumpy: a file made here in MANO's layout (chumpy objects, a
scipy.sparse regressor, Python-2 pickling), the cache, broken and hostile files, and where
load_hand_model looks for MANO."""
import pickle
import struct
import sys
import types
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from handssca.hand import model as model_mod
from handssca.hand.mano_file import ManoFileError, load_mano_data, unpickle_mano
from handssca.hand.model import ENV_MANO_DIR, load_hand_model
from handssca.hand.model_data import procedural_mano_data


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No user MANO, no user cache: every test sees an empty repository folder and its own cache."""
    monkeypatch.delenv(ENV_MANO_DIR, raising=False)
    monkeypatch.setenv("HANDSSCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(model_mod, "REPO_MANO_DIR", tmp_path / "repo_mano")


class _FakeCh:
    """Pickles like chumpy.ch.Ch: state = the instance dict, the array under 'x'."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars = {"x"}
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False

    def __getstate__(self):
        return dict(self.__dict__)


@pytest.fixture
def fake_chumpy(monkeypatch):
    """A module 'chumpy.ch' holding a class 'Ch', so that pickle records objects under that name."""
    pkg, mod = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    Ch = type("Ch", (_FakeCh,), {"__module__": "chumpy.ch"})
    mod.Ch = Ch
    pkg.ch = mod
    monkeypatch.setitem(sys.modules, "chumpy", pkg)
    monkeypatch.setitem(sys.modules, "chumpy.ch", mod)
    return Ch


def _mano_like(Ch):
    """A dict in MANO_RIGHT.pkl's layout (the procedural hand's arrays), with chumpy and sparse parts."""
    d = procedural_mano_data()
    return {
        "v_template": np.array(d["v_template"]),
        "f": np.array(d["f"], dtype=np.uint32),
        "J_regressor": sp.csc_matrix(d["J_regressor"]),
        "kintree_table": np.array([[4294967295] + list(d["kintree_table"][0][1:]), list(range(16))],
                                  dtype=np.uint32),
        "weights": np.array(d["weights"]),
        "shapedirs": Ch(np.array(d["shapedirs"])),
        "posedirs": np.array(d["posedirs"]),
        "hands_components": np.array(d["hands_components"]),
        "hands_mean": np.array(d["hands_mean"]),
        "hands_coeffs": np.zeros((4, 45)),
        "J": Ch(np.array(d["J"])),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 str (BINSTRING), as the MANO release was written."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes_py2(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes_py2


def _dump_py2(obj) -> bytes:
    import io
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # Python 2 numpy and scipy lived under these module names
    return (buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            .replace(b"scipy.sparse._csc", b"scipy.sparse.csc"))


@pytest.mark.parametrize("writer", ["protocol2", "python2", "protocol0"])
def test_mimic_mano_pickle_loads_without_chumpy(tmp_path, fake_chumpy, writer):
    src = _mano_like(fake_chumpy)
    raw = {"protocol2": lambda: pickle.dumps(src, protocol=2), "python2": lambda: _dump_py2(src),
           "protocol0": lambda: pickle.dumps(src, protocol=0)}[writer]()
    assert b"chumpy.ch" in raw and b"scipy.sparse" in raw and b"__builtin__" in raw
    if writer == "python2":
        assert b"numpy.core.multiarray" in raw and b"_codecs" not in raw
    if writer == "protocol0":  # old protocols rebuild objects through copy_reg._reconstructor
        assert b"copy_reg\n_reconstructor" in raw
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(raw)
    sys.modules.pop("chumpy.ch")  # the loader must not need chumpy
    sys.modules.pop("chumpy")
    data = load_mano_data(path)
    np.testing.assert_array_equal(data["shapedirs"], src["shapedirs"].x)
    np.testing.assert_array_equal(data["J"], src["J"].x)
    np.testing.assert_array_equal(data["J_regressor"], src["J_regressor"].toarray())
    np.testing.assert_array_equal(data["v_template"], src["v_template"])
    np.testing.assert_array_equal(data["f"], src["f"].astype(np.int64))
    assert data["kintree_table"][0, 0] == -1 and data["bs_style"] == "lbs"


def test_smplx_mano_driven_by_the_loaded_file_matches_the_source(tmp_path, fake_chumpy):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(_mano_like(fake_chumpy), protocol=2))
    real = load_hand_model(path)
    proc = load_hand_model(kind="procedural")
    assert real.kind == "mano" and real.source == str(path) and proc.kind == "procedural"
    g = torch.Generator().manual_seed(0)
    pose, beta = 0.3 * torch.randn(2, 48, generator=g), torch.randn(2, 10, generator=g)
    a = real(betas=beta, global_orient=pose[:, :3], hand_pose=pose[:, 3:]).vertices
    b = proc(betas=beta, global_orient=pose[:, :3], hand_pose=pose[:, 3:]).vertices
    torch.testing.assert_close(a, b)


def test_converted_arrays_are_cached_outside_and_reused(tmp_path, fake_chumpy, monkeypatch):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(_mano_like(fake_chumpy), protocol=2))
    first = load_mano_data(path)
    cached = list((tmp_path / "cache" / "mano").glob("MANO_RIGHT-*.npz"))
    assert len(cached) == 1
    with np.load(cached[0], allow_pickle=False) as z:  # plain arrays, no pickle inside
        assert "shapedirs" in z.files
    monkeypatch.setattr("handssca.hand.mano_file.unpickle_mano",
                        lambda *a, **k: pytest.fail("the cache was not used"))
    second = load_mano_data(path)
    for k in first:
        np.testing.assert_array_equal(np.asarray(first[k]), np.asarray(second[k]))
    # a damaged cache entry is rebuilt from the pickle
    cached[0].write_bytes(b"broken")
    monkeypatch.undo()
    monkeypatch.setenv("HANDSSCA_CACHE_DIR", str(tmp_path / "cache"))
    third = load_mano_data(path)
    np.testing.assert_array_equal(third["shapedirs"], first["shapedirs"])


def test_cache_key_follows_the_file_content(tmp_path, fake_chumpy):
    src = _mano_like(fake_chumpy)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(src, protocol=2))
    a = load_mano_data(path)
    src["hands_mean"] = src["hands_mean"] + 1.0
    path.write_bytes(pickle.dumps(src, protocol=2))
    b = load_mano_data(path)
    np.testing.assert_allclose(b["hands_mean"], a["hands_mean"] + 1.0)
    assert len(list((tmp_path / "cache" / "mano").glob("*.npz"))) == 2


@pytest.mark.parametrize("content, match", [
    (b"", "not a readable MANO pickle"),
    (b"\x00\x01garbage that is not a pickle at all", "not a"),
    (pickle.dumps([1, 2, 3], protocol=2), "holds a list"),
    (pickle.dumps({"v_template": np.zeros((6890, 3))}, protocol=2), "missing"),
])
def test_corrupt_or_wrong_files_raise_naming_the_file(tmp_path, content, match):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(content)
    with pytest.raises(ManoFileError, match=match) as err:
        load_mano_data(path)
    assert str(path) in str(err.value)


def test_truncated_file_raises(tmp_path, fake_chumpy):
    raw = pickle.dumps(_mano_like(fake_chumpy), protocol=2)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ManoFileError, match="MANO_RIGHT.pkl"):
        load_mano_data(path)


def test_wrong_shapes_and_tree_are_reported(tmp_path, fake_chumpy):
    src = _mano_like(fake_chumpy)
    src["v_template"] = np.zeros((6890, 3))  # an SMPL body, not a hand
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(src, protocol=2))
    with pytest.raises(ManoFileError, match=r"v_template.*\(6890, 3\).*778x3"):
        load_mano_data(path)
    src = _mano_like(fake_chumpy)
    src["kintree_table"] = np.array([[4294967295] + [0] * 15, list(range(16))], dtype=np.uint32)
    path.write_bytes(pickle.dumps(src, protocol=2))
    with pytest.raises(ManoFileError, match="kintree_table"):
        load_mano_data(path)


class _Exploit:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > should_not_exist",))


def test_foreign_classes_are_refused_and_never_called(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = pickle.dumps({"v_template": _Exploit()}, protocol=2)
    with pytest.raises(ManoFileError, match="refusing to load"):
        unpickle_mano(raw, "evil.pkl")
    assert not (tmp_path / "should_not_exist").exists()
    with pytest.raises(ManoFileError, match="refusing"):
        unpickle_mano(pickle.dumps({"x": warnings.warn}, protocol=2), "evil.pkl")


def test_explicit_path_missing_or_corrupt_raises_instead_of_falling_back(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl"):
        load_hand_model(tmp_path / "nowhere" / "MANO_RIGHT.pkl")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl"):
        load_hand_model(empty)
    bad = tmp_path / "MANO_RIGHT.pkl"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ManoFileError):
        load_hand_model(bad)
    with pytest.raises(ValueError, match="is_rhand"):
        load_hand_model(tmp_path / "MANO_LEFT.pkl")  # a left-hand file for a right hand
    monkeypatch.setenv(ENV_MANO_DIR, str(empty))  # the environment is explicit too
    with pytest.raises(FileNotFoundError, match=ENV_MANO_DIR):
        load_hand_model()
    monkeypatch.delenv(ENV_MANO_DIR)
    with pytest.raises(FileNotFoundError, match="no MANO found"):
        load_hand_model(kind="mano")


def test_resolution_order_environment_then_repository_then_procedural(tmp_path, fake_chumpy, monkeypatch):
    assert load_hand_model().kind == "procedural"  # nothing installed
    raw = pickle.dumps(_mano_like(fake_chumpy), protocol=2)
    repo = tmp_path / "repo_mano"
    repo.mkdir()
    (repo / "MANO_RIGHT.pkl").write_bytes(raw)
    m = load_hand_model()
    assert m.kind == "mano" and m.source == str(repo / "MANO_RIGHT.pkl")
    env = tmp_path / "env"
    env.mkdir()
    (env / "MANO_RIGHT.pkl").write_bytes(raw)
    monkeypatch.setenv(ENV_MANO_DIR, str(env))
    assert load_hand_model().source == str(env / "MANO_RIGHT.pkl")
    assert load_hand_model(kind="procedural").kind == "procedural"
    # a left hand without MANO_LEFT.pkl: the mirror of MANO_RIGHT.pkl, with a warning
    with pytest.warns(UserWarning, match="mirror"):
        left = load_hand_model(is_rhand=False)
    assert left.kind == "mano" and left.mirrored and not left.is_rhand
    right = load_hand_model()
    flip = torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(left.v_template, right.v_template * flip)
