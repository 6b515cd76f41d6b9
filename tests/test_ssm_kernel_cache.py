"""The compiled-kernel cache runs no code it did not build: a library planted under the
kernel's predictable name is never loaded (its constructor never runs), and a cache folder that
others can write is refused with a message naming it."""
from __future__ import annotations

import os
import stat
import subprocess
import warnings
from pathlib import Path

import pytest

from handssca.ssm import fused_scan
from handssca.ssm.fused_scan import COMPILE_FLAGS, build_kernel, library_path, untrusted_reason

#: a library whose constructor, run the moment it is loaded, writes the file $MARKER names
PLANTED_C = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {
    const char *p = getenv("HANDSSCA_TEST_MARKER");
    FILE *f = p ? fopen(p, "w") : NULL;
    if (f) { fputs("the planted library ran", f); fclose(f); }
}
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private kernel cache of the test's own, and the marker file a planted library writes."""
    folder = tmp_path / "kernels"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("HANDSSCA_KERNEL_DIR", str(folder))
    monkeypatch.setenv("HANDSSCA_TEST_MARKER", str(tmp_path / "marker"))
    monkeypatch.delenv("HANDSSCA_FUSED_SCAN", raising=False)
    return folder


def _payload(kind: str, tmp_path: Path) -> bytes:
    """The planted file's bytes: garbage, or a real library with a constructor."""
    if kind == "garbage":
        return b"\x7fELF not really a library"
    src = tmp_path / "planted.c"
    src.write_text(PLANTED_C)
    so = tmp_path / "planted.so"
    subprocess.run(["cc", "-shared", "-fPIC", str(src), "-o", str(so)], check=True)
    return so.read_bytes()


def _plant(cache: Path, data: bytes, digest: str | None, mode: int = 0o755) -> list:
    """Put ``data`` under every name the kernel could be built under, with ``digest`` recorded
    beside it (None: no digest file)."""
    planted = []
    for flags in COMPILE_FLAGS:
        lib = library_path(cache, "cc", flags)
        lib.write_bytes(data)
        lib.chmod(mode)
        if digest is not None:
            (cache / (lib.name + ".sha256")).write_text(f"{digest}  {lib.name}\n")
        planted.append(lib)
    return planted


def _load():
    """load_kernel without its process-wide memo, so each test builds into its own cache."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lib = fused_scan.load_kernel.__wrapped__()
    return lib, [str(w.message) for w in caught]


@pytest.mark.parametrize("payload", ["constructor", "garbage"])
@pytest.mark.parametrize("how", ["no digest", "wrong digest", "others can write it"])
def test_a_planted_library_is_never_loaded_and_the_real_kernel_is_rebuilt(cache, tmp_path,
                                                                          payload, how):
    import hashlib

    data = _payload(payload, tmp_path)
    right = hashlib.sha256(data).hexdigest()
    digest = {"no digest": None, "wrong digest": "0" * 64, "others can write it": right}[how]
    planted = _plant(cache, data, digest, 0o777 if how == "others can write it" else 0o755)
    lib, messages = _load()
    assert not (tmp_path / "marker").exists(), "the planted library's code ran"
    assert lib is not None and lib.handssca_scan_n_max() == 64, messages  # the real kernel
    reason = {"no digest": "no digest was recorded", "wrong digest": "differs from the",
              "others can write it": "group or others can write it"}[how]
    assert any(str(planted[0]) in m and reason in m and "rebuilding" in m for m in messages), messages
    # rebuilt in its place, with its digest, and nobody else can write it
    assert fused_scan.library_problem(planted[0]) is None
    assert planted[0].read_bytes() != data


@pytest.mark.parametrize("how", ["group-writable", "world-writable", "another user's"])
def test_a_cache_folder_that_is_not_private_is_refused(cache, tmp_path, monkeypatch, how):
    import hashlib

    data = _payload("constructor", tmp_path)
    # even a planted library with its right digest and safe permissions is refused there
    _plant(cache, data, hashlib.sha256(data).hexdigest())
    if how == "another user's":
        monkeypatch.setattr(fused_scan, "_current_uid", lambda: os.geteuid() + 1)
    else:
        cache.chmod(0o770 if how == "group-writable" else 0o777)
    lib, messages = _load()
    assert not (tmp_path / "marker").exists(), "the planted library's code ran"
    assert lib is None  # the backend is unavailable: the chunked one is used
    reason = "not to you" if how == "another user's" else "group or others can write it"
    assert len(messages) == 1 and str(cache) in messages[0] and reason in messages[0] \
        and "HANDSSCA_KERNEL_DIR" in messages[0], messages


def test_a_new_cache_folder_is_private(tmp_path):
    lib = build_kernel(tmp_path / "new" / "kernels")
    assert stat.S_IMODE(lib.parent.stat().st_mode) == 0o700
    assert fused_scan.library_problem(lib) is None


def test_a_library_of_another_user_is_untrusted(tmp_path):
    def status(uid: int, mode: int) -> os.stat_result:
        fields = list(os.stat(tmp_path)[:10])
        fields[0], fields[4] = stat.S_IFREG | mode, uid
        return os.stat_result(fields)

    me = os.geteuid()
    assert untrusted_reason(status(me, 0o755)) is None
    assert "belongs to user id" in untrusted_reason(status(me + 1, 0o755))
    assert "group or others can write it (mode 0775)" in untrusted_reason(status(me, 0o775))
