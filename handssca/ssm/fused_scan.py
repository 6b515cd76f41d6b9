"""The selective scan of Eq. 2-3 and its backward as compiled loops: the CPU default.

The chunked backend (:mod:`handssca.ssm.chunked_scan`) is exact and an order of magnitude faster
than the sequential reference, but in eager PyTorch every state update still costs about five
passes over memory. The ``fused`` backend runs the recurrence as one C loop per sequence and
channel tile (``csrc/selective_scan_cpu.c``): the tile's N x 64 states stay in the L1 cache,
each input is read once and each output written once, and the compiler vectorises the loop over
channels. With gradients, the forward keeps the state before every 32nd step (not every step's)
and the backward recomputes each 32-step chunk from its saved state while it runs the adjoint
recurrence backwards, in the same kind of loop (the memory-bounded backward the chunked scan
has, without its memory traffic). It is compiled on first use with the machine's C compiler
(``$CC``, else ``cc``) and cached; it is loaded with :mod:`ctypes`, which releases the GIL, so
the work items (group, sequence, channel tile) are split between ``torch.get_num_threads()``
Python threads.

State sizes above the kernel's ``N_MAX`` (64) are handed to the chunked backend.

Where it cannot be built (no C compiler, or ``HANDSSCA_FUSED_SCAN=0``), :func:`fused_available`
is false, one warning says why, and :func:`handssca.ssm.resolve_backend` picks ``chunked``.

The cache is checked before anything in it runs. Loading a shared library runs its code (its
constructors) in the user's process, and the library's name is predictable
(``selective_scan_cpu-<hash>.so``), so a file planted under that name in a cache folder that
others can write (a cache shared between users or machines) must never be loaded. Two checks,
both needed:

* a private folder: the cache folder is created 0700 and refused (the backend is then
  unavailable, with a warning naming the folder, why, and what to do) unless it belongs to the
  current user and neither group nor others can write it. Only its owner can then place a file
  there, and every library and digest in it must be a regular file of the user's own that
  nobody else can write;
* a digest: when a library is built, its SHA-256 is recorded beside it
  (``selective_scan_cpu-<hash>.so.sha256``, written atomically); before ``ctypes.CDLL`` the
  library is hashed again and compared. A library without its digest, with another one, or of
  the wrong owner or permissions (a file copied in by hand, left by an older version of the
  package, or truncated) is never loaded: it is rebuilt in its place (atomically), with a
  warning that names the file and why.

A private folder alone would trust any file in it; a digest alone would trust a planted file
with a planted digest. Between the last check and the load only the folder's owner could swap
the file.

Environment:

- ``CC``: the C compiler (default ``cc``)
- ``HANDSSCA_KERNEL_DIR``: where compiled kernels are cached (default
  ``$XDG_CACHE_HOME/handssca/kernels``, else ``~/.cache/handssca/kernels``); a folder of the
  user's own that nobody else can write
- ``HANDSSCA_FUSED_SCAN``: ``0`` turns the backend off
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional

import torch

from ..utils import write_text_atomic
from .chunked_scan import (_check_grouped, _eager_only, _needs_grad, mamba_layout,
                           selective_scan_grouped)

Tensor = torch.Tensor

SOURCE = Path(__file__).with_name("csrc") / "selective_scan_cpu.c"
#: compile flags, tried in order: the first for GCC and Clang on the machine's own instruction
#: set; the second for compilers without -march=native. -ffast-math lets the compiler vectorise
#: the softplus' exp and log1p; it is given when compiling only (see the source's header).
COMPILE_FLAGS = (["-O3", "-march=native", "-ffast-math", "-fPIC"],
                 ["-O3", "-ffast-math", "-fPIC"])
LINK_FLAGS = ["-shared"]
LIBS = ["-lm"]
ENV_DISABLE = "HANDSSCA_FUSED_SCAN"
ENV_CACHE = "HANDSSCA_KERNEL_DIR"
#: the SHA-256 of a built library is recorded in a file of this suffix beside it
DIGEST_SUFFIX = ".sha256"


class KernelBuildError(RuntimeError):
    """The C kernel could not be compiled or loaded; the message has the compiler's output."""


class KernelCacheError(KernelBuildError):
    """The kernel cache folder is not private to the user, or a library in it is not the one
    this package built; the message names the path, why, and what to do."""


def cache_dir() -> Path:
    """Folder of compiled kernels (``HANDSSCA_KERNEL_DIR``, else the user's cache folder)."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "handssca" / "kernels"


def _current_uid() -> Optional[int]:
    """The effective user id, or None where the system has none (Windows: no owner check)."""
    return os.geteuid() if hasattr(os, "geteuid") else None


def untrusted_reason(st: os.stat_result) -> Optional[str]:
    """Why a file or folder with status ``st`` may hold code that someone else put there: it
    belongs to another user, or group or others can write it; None when neither."""
    uid = _current_uid()
    if uid is not None and st.st_uid != uid:
        return f"it belongs to user id {st.st_uid}, not to you (user id {uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"group or others can write it (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def private_dir(directory: Path) -> Path:
    """``directory``, created 0700 if missing, checked to belong to the user alone.

    Raises:
        KernelCacheError: it is not a folder, belongs to another user, or group or others can
            write it (so they could plant a library in it); names the folder and what to do.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=0o700)  # only the leaf: the parents are ordinary folders
    except FileExistsError:
        pass
    st = directory.stat()  # follows a link: what counts is the folder the files land in
    why = ("it is not a folder" if not stat.S_ISDIR(st.st_mode) else untrusted_reason(st))
    if why is not None:
        raise KernelCacheError(
            f"the kernel cache folder {directory} is not private: {why}. Compiled code is loaded "
            f"from it, so it must be a folder of your own that nobody else can write: run "
            f"'chmod go-w {directory}' if it is yours, or set {ENV_CACHE} to a folder of your own")
    return directory


def _digest_file(lib: Path) -> Path:
    return lib.with_name(lib.name + DIGEST_SUFFIX)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # a library is a few hundred kB


def library_problem(lib: Path) -> Optional[str]:
    """Why the library ``lib`` must not be loaded, or None when it is one this package built:
    it and its digest file are regular files of the user's own that nobody else can write, and
    the library's SHA-256 equals the digest recorded when it was built."""
    digest = _digest_file(lib)
    for path in (lib, digest):
        try:
            st = os.lstat(path)  # a link is refused, not followed
        except FileNotFoundError:
            return (f"{path} does not exist" if path == lib else
                    f"no digest was recorded for it ({digest.name} is missing), so this package "
                    f"did not build it")
        why = "it is not a regular file" if not stat.S_ISREG(st.st_mode) else untrusted_reason(st)
        if why is not None:
            return f"{path}: {why}"
    recorded = (digest.read_text().split() or [""])[0]
    actual = _sha256(lib)
    if actual != recorded:
        return (f"its SHA-256 {actual[:12]}... differs from the {recorded[:12] or 'empty'}... "
                f"recorded in {digest.name} when it was built")
    return None


def _install(built: Path, lib: Path) -> None:
    """Move a freshly built library to ``lib`` and record its digest, each atomically. The
    digest is written first: a process killed in between leaves a library that does not match
    its digest, which is rebuilt, never loaded."""
    write_text_atomic(_digest_file(lib), f"{_sha256(built)}  {lib.name}\n")
    os.replace(built, lib)


def _cpu_signature() -> str:
    """What the compiled code depends on besides the source and compiler: the CPU model and its
    instruction-set flags (-march=native), so a cache shared between machines never hands one
    machine another's binary."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


@functools.lru_cache(maxsize=None)  # asked once per compiler, not once per flag set
def _compiler_version(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise KernelBuildError(f"no C compiler: could not run {cc!r} ({exc}); install one "
                               f"(e.g. gcc) or set CC") from exc
    if out.returncode != 0:
        raise KernelBuildError(f"C compiler {cc!r} --version failed: {out.stderr.strip()}")
    return out.stdout


def library_path(directory: Path, compiler: str, flags: List[str]) -> Path:
    """Where the library built by ``compiler`` with ``flags`` from this source for this CPU
    lives in ``directory`` (the name hashes all four, so a changed input never reuses it)."""
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), _compiler_version(compiler).encode(),
                                     " ".join(flags).encode(),
                                     _cpu_signature().encode()])).hexdigest()[:16]
    return Path(directory) / f"selective_scan_cpu-{key}.so"


def build_kernel(directory: Optional[Path] = None, compiler: Optional[str] = None) -> Path:
    """Compile ``csrc/selective_scan_cpu.c`` into a shared library in ``directory`` (default
    :func:`cache_dir`) and return its path; a library already built from the same source,
    compiler and CPU is reused when it passes :func:`library_problem` (a warning names one that
    does not, and it is rebuilt in its place). Written atomically (temporary names, then a
    rename), so two processes building at once, or a build killed half-way, never leave a broken
    library. Raises :class:`KernelCacheError` when the folder is not private
    (:func:`private_dir`), :class:`KernelBuildError` with the compiler's messages when no flag
    set works."""
    cc = compiler or os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        raise KernelBuildError(f"no C compiler: {cc!r} is not on PATH; install one (e.g. gcc) "
                               f"or set CC")
    directory = private_dir(Path(directory) if directory is not None else cache_dir())
    errors: List[str] = []
    for flags in COMPILE_FLAGS:
        lib = library_path(directory, cc, flags)
        if os.path.lexists(lib):
            problem = library_problem(lib)
            if problem is None:
                return lib
            warnings.warn(f"not loading the compiled kernel {lib}: {problem}; rebuilding it",
                          RuntimeWarning, stacklevel=2)
        with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
            obj, so = Path(tmp) / "scan.o", Path(tmp) / "scan.so"
            steps = ([cc, *flags, "-c", str(SOURCE), "-o", str(obj)],
                     [cc, *LINK_FLAGS, str(obj), "-o", str(so), *LIBS])
            for cmd in steps:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                if out.returncode != 0:
                    errors.append(f"$ {' '.join(cmd)}\n{out.stderr.strip()}")
                    break
            else:
                _install(so, lib)
                return lib
    raise KernelBuildError("could not compile the fused scan kernel " + str(SOURCE) + ":\n"
                           + "\n".join(errors))


def verified_library(lib: Path) -> Path:
    """``lib``, checked once more right before it is loaded (:func:`library_problem`).

    Raises:
        KernelCacheError: it is not the library this package built; names it and why.
    """
    problem = library_problem(lib)
    if problem is not None:
        raise KernelCacheError(f"refusing to load the compiled kernel {lib}: {problem}; remove "
                               f"it and its {DIGEST_SUFFIX} file to rebuild it")
    return lib


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    for name in ("handssca_scan_f32", "handssca_scan_f64"):
        fn = getattr(lib, name)
        fn.restype = None
        fn.argtypes = [i64] * 5 + [p] * 11 + [ctypes.c_int, p, p, p, i64, i64]
    for name in ("handssca_scan_bwd_f32", "handssca_scan_bwd_f64"):
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int
        fn.argtypes = [i64] * 5 + [p] * 11 + [ctypes.c_int] + [p] * 10 + [i64, i64]
    for name in ("handssca_scan_tile", "handssca_scan_n_max", "handssca_scan_chunk"):
        getattr(lib, name).restype = ctypes.c_int
    return lib


@functools.lru_cache(maxsize=None)
def load_kernel() -> Optional[ctypes.CDLL]:
    """The compiled kernel (built on first call), or None -- with one warning saying why --
    where it cannot be built, its cache folder is not private, or it is turned off with
    ``HANDSSCA_FUSED_SCAN=0``. Only a library that passes :func:`library_problem` is loaded."""
    if os.environ.get(ENV_DISABLE, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        return _bind(ctypes.CDLL(str(verified_library(build_kernel()))))
    except (KernelBuildError, OSError, AttributeError) as exc:
        warnings.warn(f"the fused CPU selective scan is not available, so the chunked backend "
                      f"is used ({exc})", RuntimeWarning, stacklevel=2)
        return None


def fused_available() -> bool:
    """Whether the ``fused`` backend can run here (compiles the kernel on first call)."""
    return load_kernel() is not None


_POOL: Optional[ThreadPoolExecutor] = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """A pool of at least ``workers`` threads, kept between calls (grown when asked for more)."""
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE < workers:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="handssca-scan")
            _POOL_SIZE = workers
        return _POOL


def _strides(t: Tensor):
    return (ctypes.c_int64 * 3)(*t.stride()[:3])


def _inner_contiguous(t: Tensor) -> Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _ptr(t: Optional[Tensor]):
    return None if t is None else t.data_ptr()


def _parallel(run, items: int, threads: Optional[int]) -> None:
    """``run(begin, end)`` over [0, items), split between ``threads`` (default
    ``torch.get_num_threads()``) pool threads; ctypes releases the GIL during each call."""
    workers = max(1, min(threads or torch.get_num_threads(), items))
    if workers == 1:
        run(0, items)
        return
    bounds = [items * k // workers for k in range(workers + 1)]
    futures = [_pool(workers).submit(run, s, e) for s, e in zip(bounds, bounds[1:]) if e > s]
    for f in futures:
        f.result()


def _forward(lib, u, delta, A, B, C, D, delta_bias, softplus: bool, want_last: bool,
             save_states: bool, threads: Optional[int]):
    """The kernel's forward on tensors already in the compute dtype and the kernel's layout.
    Returns y (G, b, L, Dg), h_L (G, b, Dg, N) or None, and the states before every CHUNK-th
    step (G, b, ceil(L / CHUNK), N, Dg) or None."""
    g, b, L, dg = u.shape
    n = A.shape[2]
    y = torch.empty(g, b, L, dg, dtype=u.dtype)
    h = torch.empty(g, b, dg, n, dtype=u.dtype) if want_last else None
    chunk = lib.handssca_scan_chunk()
    ck = (torch.empty(g, b, -(-L // chunk), n, dg, dtype=u.dtype) if save_states else None)
    fn = lib.handssca_scan_f64 if u.dtype == torch.float64 else lib.handssca_scan_f32
    tile = lib.handssca_scan_tile()

    def run(begin: int, end: int) -> None:
        fn(g, b, L, dg, n, _ptr(u), _strides(u), _ptr(delta), _strides(delta), _ptr(A),
           _ptr(B), _strides(B), _ptr(C), _strides(C), _ptr(D), _ptr(delta_bias),
           int(softplus), _ptr(y), _ptr(h), _ptr(ck), begin, end)

    _parallel(run, g * b * -(-dg // tile), threads)
    return y, h, ck


class _FusedScan(torch.autograd.Function):
    """The kernel's forward, saving a state every CHUNK steps, and its backward (the reverse
    chunked recomputation of the source's header). Inputs in the compute dtype."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, softplus: bool, threads):
        lib = load_kernel()
        y, h, ck = _forward(lib, u, delta, A, B, C, D, delta_bias, softplus, True, True, threads)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, ck)
        ctx.softplus, ctx.threads = softplus, threads
        return y, h

    @staticmethod
    def backward(ctx, gy, gh):
        u, delta, A, B, C, D, delta_bias, ck = ctx.saved_tensors
        lib = load_kernel()
        g, b, L, dg = u.shape
        n = A.shape[2]
        cd = u.dtype
        # autograd materialises unused output gradients as zeros, so both are tensors
        gy, gh = gy.to(cd).contiguous(), gh.to(cd).contiguous()
        du, ddelta = torch.empty(g, b, L, dg, dtype=cd), torch.empty(g, b, L, dg, dtype=cd)
        dA = torch.empty(g, b, dg, n, dtype=cd)
        dD, dbias = torch.empty(g, b, dg, dtype=cd), torch.empty(g, b, dg, dtype=cd)
        dB, dC = torch.zeros(g, b, L, n, dtype=cd), torch.zeros(g, b, L, n, dtype=cd)
        fn = lib.handssca_scan_bwd_f64 if cd == torch.float64 else lib.handssca_scan_bwd_f32
        failed = []

        def run(begin: int, end: int) -> None:
            if fn(g, b, L, dg, n, _ptr(u), _strides(u), _ptr(delta), _strides(delta), _ptr(A),
                  _ptr(B), _strides(B), _ptr(C), _strides(C), _ptr(D), _ptr(delta_bias),
                  int(ctx.softplus), _ptr(ck), _ptr(gy), _ptr(gh), _ptr(du), _ptr(ddelta),
                  _ptr(dA), _ptr(dD), _ptr(dbias), _ptr(dB), _ptr(dC), begin, end):
                failed.append((begin, end))

        _parallel(run, g * b, ctx.threads)
        if failed:
            raise MemoryError("the fused scan's backward could not allocate its chunk buffers")
        return (du, ddelta, dA.sum(1), dB, dC, None if D is None else dD.sum(1),
                None if delta_bias is None else dbias.sum(1), None, None)


@_eager_only
def selective_scan_grouped_fused(u, delta, A, B, C, D=None, delta_bias=None,
                                 delta_softplus=False, return_last_state=False, *,
                                 threads: Optional[int] = None):
    """The selective scan (Eq. 2-3; Mamba Alg. 2) of G groups, in the grouped layout, by the
    compiled loops; same contract as :func:`handssca.ssm.chunked_scan.selective_scan_grouped`.

    Args:
        u, delta: (G, batch, L, Dg), any strides (copied when the channel axis is strided).
        A: (G, Dg, N) real, <= 0.
        B, C: (G, batch, L, N), any strides.
        D, delta_bias: optional (G, Dg).
        delta_softplus: apply softplus to delta (+ bias).
        return_last_state: also return h_L, (G, batch, Dg, N).
        threads: work threads (default ``torch.get_num_threads()``).

    Returns:
        y (G, batch, L, Dg) in u's dtype (computed in float64 for float64 input, else float32);
        with ``return_last_state``, (y, h_L). Differentiable in every tensor input: with
        gradients the forward keeps one state per 32 steps and the backward recomputes the rest
        (see the C source). For N above the kernel's limit the chunked backend computes it.
    """
    _check_grouped(u, delta, A, B, C, D, delta_bias)
    params = [v for v in (D, delta_bias) if v is not None]
    lib = load_kernel()
    if lib is None:
        raise RuntimeError("the 'fused' scan backend is not available here (it needs a C "
                           "compiler; see handssca.ssm.fused_scan); use backend='chunked'")
    if u.device.type != "cpu":
        raise ValueError(f"the 'fused' scan backend runs on CPU tensors only; got u on "
                         f"{u.device}")
    if A.shape[2] > lib.handssca_scan_n_max():
        return selective_scan_grouped(u, delta, A, B, C, D, delta_bias, delta_softplus,
                                      return_last_state)
    dtype_in = u.dtype
    cd = torch.float64 if u.dtype == torch.float64 else torch.float32
    # conversions outside the autograd function, so that autograd casts the gradients back
    u, delta, B, C = (_inner_contiguous(v.to(cd)) for v in (u, delta, B, C))
    A = A.to(cd).contiguous()
    D = None if D is None else D.to(cd).contiguous()
    delta_bias = None if delta_bias is None else delta_bias.to(cd).contiguous()
    if _needs_grad(u, delta, A, B, C, *params):
        y, h = _FusedScan.apply(u, delta, A, B, C, D, delta_bias, bool(delta_softplus), threads)
    else:
        y, h, _ = _forward(lib, u, delta, A, B, C, D, delta_bias, bool(delta_softplus),
                           return_last_state, False, threads)
    y = y.to(dtype_in)
    return (y, h) if return_last_state else y


@_eager_only
def selective_scan_fused(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                         delta_softplus=False, return_last_state=False):
    """The selective scan (Eq. 2-3; Mamba Alg. 2) with mamba-ssm's signature, by the compiled
    loop (inference) or the chunked backend (with gradients).

    Shapes as :func:`handssca.ssm.selective_scan`: u, delta, z (batch, D, L); A (D, N);
    B, C (batch, N, L) or (batch, G, N, L); D, delta_bias (D,). Returns out (batch, D, L) in u's
    dtype, and h_L (batch, D, N) when ``return_last_state``.
    """
    return mamba_layout(selective_scan_grouped_fused, u, delta, A, B, C, D, z, delta_bias,
                        delta_softplus, return_last_state)
