"""``python -m handssca bench gpu``: the scans and the training throughput on a CUDA GPU, at once.

1. **Scans.** The two selective scans of the SSCA block (Section 3.3; the shapes of
   ``bench scan``: spatial 4 x 512 channels, L = 1024; channel 4 x 32 channels, L = 16384;
   N = 16) at batch 32, forward (under ``torch.no_grad``) and forward+backward (every input's
   gradient), for fp32 and bf16 inputs, with each backend that runs: mamba-ssm's CUDA kernel
   (``mamba``, when it is installed), the package's pure-PyTorch scan (``chunked``) and the
   package's fused Triton cross-scan kernel (``triton``, when Triton is installed,
   :mod:`handssca.ssm.triton_scan`; it is timed whatever ``HANDSSCA_TRITON_SCAN`` says). The
   ``triton`` rows do more than the others: each scan's four orders are read from one plane
   (:data:`PLANES`) and merged back, the cross-scan and merge the other rows leave out. Beside
   them, the physical floor of both scans together: the issue's estimate for an H100 (bf16
   0.5 ms forward, 1.3 ms forward+backward; fp32 0.63 / 1.7 ms) and the memory-traffic bound
   of this GPU, the bytes a scan must read and write (:func:`scan_bytes`; for ``triton`` the
   fused kernel's own, smaller, bytes: one plane read instead of four orders, one merged plane
   written) over the bandwidth of a device-to-device copy measured here
   (:func:`copy_bandwidth`).
2. **Training throughput** of the whole network (Fig. 2) at batch 32, 256 x 256: images per
   second of whole training steps (forward, the loss of Eq. 4, backward, an Adam step) for each
   attention variant (Table 6: none, self_attention, ssa, ssca) and each setting of
   :data:`SETTINGS`: fp32; bf16 autocast; bf16 and channels-last; bf16, channels-last and
   ``torch.compile`` (the engine's GPU options, :mod:`handssca.engine.runtime`).
3. **Where the time goes**: for one variant and setting (default ssca, bf16 + channels-last),
   the forward time of each part of the network and the operators with the most GPU time in
   a few training steps (``torch.profiler``).

The figures, the device, the versions (torch, CUDA, cuDNN, mamba-ssm, Triton) and the commit go
to ``--out`` (default ``_build/bench/gpu.json``). Without CUDA the command stops at once with
exit code 2 and says what is needed; mamba-ssm is never imported then.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import math
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

from ..utils import build_dir, git_commit
from . import hardware_info, interleaved_times, sync, write_json_atomic

#: the issue's estimate of the physical floor of both SSCA scans together at batch 32 on an
#: H100, ms: (forward, forward+backward) per input dtype
H100_FLOOR_MS = {"bfloat16": (0.5, 1.3), "float32": (0.63, 1.7)}

#: the fused cross-scan kernel's name among the scan backends of this benchmark
TRITON = "triton"
#: each shape of ``bench scan`` as the plane the fused kernel scans: (d, H, W) with 4 d = D and
#: H W = L (spatial: 512 channels over 32 x 32; channel: W = 32 channels over the 512 x 32 plane)
PLANES = {"spatial": (512, 32, 32), "channel": (32, 512, 32)}

#: training settings: autocast, channels-last memory, torch.compile (cumulative, as the engine
#: applies them on a GPU)
SETTINGS = {
    "fp32": dict(amp="none", channels_last=False, compile=False),
    "bf16": dict(amp="bf16", channels_last=False, compile=False),
    "bf16_channels_last": dict(amp="bf16", channels_last=True, compile=False),
    "bf16_channels_last_compile": dict(amp="bf16", channels_last=True, compile=True),
}
ATTENTIONS = ("none", "self_attention", "ssa", "ssca")
PARTS = ("backbone", "attention", "heatmap_head", "encoder", "mano_head", "hand_layer")

CUDA_NEEDED = (
    "bench gpu: CUDA is needed, and torch.cuda.is_available() is False on this machine "
    f"(torch {torch.__version__}). Run it on a machine with an NVIDIA GPU and a CUDA build of "
    "PyTorch, with the mamba-ssm extra installed for its CUDA scan kernel:\n"
    "    pip install -e \".[cuda]\"\n"
    "Where mamba-ssm has no wheel for your CUDA and PyTorch, build it from source:\n"
    "    MAMBA_FORCE_BUILD=TRUE pip install mamba-ssm --no-build-isolation --no-deps\n"
    "after cutting the -gencode list in its setup.py to your GPU's architecture (e.g. "
    "arch=compute_90,code=sm_90 for an H100). Without mamba-ssm the command still measures the "
    "package's own PyTorch scan.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options."""
    p.add_argument("--out", default=None, help="JSON output file (default: _build/bench/gpu.json)")
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats and steps (a smoke run of every part)")
    p.add_argument("--batch", type=int, default=32, help="batch size of scans and training (32)")
    p.add_argument("--input-size", type=int, default=256, help="input side S (256)")
    p.add_argument("--scan-backends", default=None,
                   help="comma-separated scan backends (default: mamba and triton when "
                        "installed, chunked)")
    p.add_argument("--dtypes", default="float32,bfloat16", help="scan input dtypes")
    p.add_argument("--attention", default=",".join(ATTENTIONS),
                   help="comma-separated attention variants to train")
    p.add_argument("--settings", default=",".join(SETTINGS),
                   help=f"comma-separated training settings, of {', '.join(SETTINGS)}")
    p.add_argument("--steps", type=int, default=None, help="timed training steps (default 10)")
    p.add_argument("--repeats", type=int, default=None, help="timed scan repeats (default 20)")
    p.add_argument("--profile", default="ssca:bf16_channels_last",
                   help="variant:setting of the profiler summary ('none' to skip)")
    p.add_argument("--skip-scans", action="store_true", help="no scan timings")
    p.add_argument("--skip-training", action="store_true", help="no training throughput")


# ------------------------------------------------------------------------------------ helpers
def _package_version(name: str) -> Optional[str]:
    """An installed distribution's version, read from its metadata (nothing is imported)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    """Provenance: python, torch, CUDA and cuDNN as torch was built, mamba-ssm, Triton."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": cudnn,
            "mamba_ssm": _package_version("mamba-ssm"), "triton": _package_version("triton")}


def scan_bytes(shape: str, batch: int, dtype: torch.dtype, backward: bool,
               shapes: Optional[dict] = None, fused: bool = False) -> int:
    """Bytes one scan call must move at least, in the input dtype: u, Delta (batch, D, L), B, C
    (batch, G, N, L) read and y written; with the backward also u, Delta, B, C and dy read again
    and their four gradients written (the small A, D and the bias are left out).

    Args:
        shape: "spatial" or "channel" (:data:`handssca.bench.scan.SHAPES`, or ``shapes``).
        batch, dtype: the inputs' batch size and dtype.
        backward: forward+backward instead of the forward alone.
        fused: the fused cross-scan kernel's bytes: u, y, dy and du are one plane, (batch,
            D / G, L), instead of the G orders (the orders share the plane; the merge sums them).
    """
    from .scan import N_STATE, SHAPES

    d, l, g = (shapes or SHAPES)[shape]
    x = batch * d * l             # Delta and its gradient
    u = x // g if fused else x    # u, y, dy and du
    bc = batch * g * N_STATE * l  # B, C and their gradients
    elems = 2 * u + x + 2 * bc
    if backward:
        elems += (2 * u + x + 2 * bc) + (u + x + 2 * bc)
    return elems * torch.tensor([], dtype=dtype).element_size()


def plane_inputs(inp: dict, plane: Sequence[int]) -> dict:
    """``bench scan``'s inputs (mamba-ssm's layout: u, delta (batch, 4d, L), A (4d, N), B, C
    (batch, 4, N, L), D, delta_bias (4d,)) as the fused kernel's
    (:func:`handssca.ssm.triton_scan.cross_scan_triton`), all views: x (batch, d, H, W) is the
    first order's u (the four orders read one plane), delta (batch, 4, d, H, W), A (4, d, N),
    B, C (batch, 4, N, H, W), D, delta_bias (4, d); ``plane`` is (d, H, W)."""
    d, h, w = plane
    b, n = inp["u"].shape[0], inp["A"].shape[1]
    return dict(x=inp["u"][:, :d].reshape(b, d, h, w),
                delta=inp["delta"].reshape(b, 4, d, h, w), A=inp["A"].reshape(4, d, n),
                B=inp["B"].reshape(b, 4, n, h, w), C=inp["C"].reshape(b, 4, n, h, w),
                D=inp["D"].reshape(4, d), delta_bias=inp["delta_bias"].reshape(4, d))


def _scan_call(backend: str, inp: dict, plane: Sequence[int]):
    """One call of ``backend`` on ``inp`` (``bench scan``'s), or of the fused kernel on its plane
    views (Triton imported here: optional, and only where it is timed)."""
    if backend != TRITON:
        from .scan import _call

        return _call(backend, inp)
    from ..ssm.triton_scan import cross_scan_triton

    return cross_scan_triton(**plane_inputs(inp, plane), delta_softplus=True)


def _scan_forward(backend: str, inp: dict, plane: Sequence[int]):
    with torch.no_grad():
        return _scan_call(backend, inp, plane)


def _scan_forward_backward(backend: str, inp: dict, gy: torch.Tensor, plane: Sequence[int]):
    for v in inp.values():
        v.grad = None
    y = _scan_call(backend, inp, plane)
    # the fused kernel's output is one plane: the first order's share of gy, in its shape
    y.backward(gy if backend != TRITON else gy[:, :plane[0]].reshape(y.shape))


def copy_bandwidth(device: torch.device, nbytes: int = 1 << 30, repeats: int = 10) -> float:
    """Bytes per second of a device-to-device copy (read + write counted), the best of
    ``repeats``: the memory bandwidth a memory-bound kernel can reach on ``device``."""
    n = max(1, nbytes // 4)
    src = torch.empty(n, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    dst.copy_(src)
    sync(device)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n * 4 / best


# ------------------------------------------------------------------------------------ scans
def time_scans(backends: Sequence[str], shapes: Sequence[str], batch: int,
               dtypes: Sequence[str], device: torch.device, repeats: int = 20, warmup: int = 3,
               shape_table: Optional[dict] = None,
               plane_table: Optional[dict] = None) -> List[dict]:
    """Forward and forward+backward times of each scan backend, shape and dtype.

    The backends of one shape and dtype are timed in interleaved rounds (``bench scan``'s
    method); ``triton`` (:data:`TRITON`) is the fused cross-scan kernel on the plane of
    ``plane_table`` (default :data:`PLANES`). Returns one row per (shape, dtype, backend) with
    ``fwd_ms``, ``fwd_bwd_ms`` (medians), their minimums, the bytes of :func:`scan_bytes` (the
    fused kernel's own for ``triton``) and ``cross_scan_merge`` (whether the cross-scan and the
    merge are included: only for ``triton``).
    """
    from . import scan as bs

    table = shape_table or bs.SHAPES
    planes = plane_table or PLANES
    rows = []
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        for shape in shapes:
            d, l, g = table[shape]
            inp = bs.make_inputs(batch, d, l, g, device, dtype, requires_grad=False)
            inp_g = bs.make_inputs(batch, d, l, g, device, dtype, requires_grad=True)
            gy = torch.randn(batch, d, l, generator=torch.Generator().manual_seed(1)).to(
                device, dtype)
            plane = planes[shape]
            fwd = {b: (lambda b=b: _scan_forward(b, inp, plane)) for b in backends}
            fb = {b: (lambda b=b: _scan_forward_backward(b, inp_g, gy, plane)) for b in backends}
            reps = {b: repeats for b in backends}
            t_fwd = interleaved_times(fwd, reps, warmup, device)
            t_fb = interleaved_times(fb, reps, warmup, device)
            for b in backends:
                rows.append(dict(
                    shape=shape, dtype=dtype_name, batch=batch, D=d, L=l, G=g, N=bs.N_STATE,
                    backend=b, fwd_ms=1e3 * statistics.median(t_fwd[b]),
                    fwd_bwd_ms=1e3 * statistics.median(t_fb[b]), fwd_min_ms=1e3 * min(t_fwd[b]),
                    fwd_bwd_min_ms=1e3 * min(t_fb[b]), repeats=repeats,
                    fwd_bytes=scan_bytes(shape, batch, dtype, False, table, b == TRITON),
                    fwd_bwd_bytes=scan_bytes(shape, batch, dtype, True, table, b == TRITON),
                    cross_scan_merge=b == TRITON))
            del inp, inp_g, gy, fwd, fb
    return rows


def scan_totals(rows: Sequence[dict], bandwidth: Optional[float]) -> List[dict]:
    """Both shapes together, per (backend, dtype), beside the floors: the issue's H100 estimate
    (for batch 32) and bytes / ``bandwidth`` (the memory-traffic bound of the device)."""
    out = []
    keys = sorted({(r["backend"], r["dtype"]) for r in rows})
    for backend, dtype in keys:
        sel = [r for r in rows if r["backend"] == backend and r["dtype"] == dtype]
        tot = dict(backend=backend, dtype=dtype, shapes=[r["shape"] for r in sel],
                   fwd_ms=sum(r["fwd_ms"] for r in sel),
                   fwd_bwd_ms=sum(r["fwd_bwd_ms"] for r in sel))
        if bandwidth:
            tot["memory_floor_fwd_ms"] = 1e3 * sum(r["fwd_bytes"] for r in sel) / bandwidth
            tot["memory_floor_fwd_bwd_ms"] = 1e3 * sum(r["fwd_bwd_bytes"] for r in sel) / bandwidth
        if dtype in H100_FLOOR_MS and all(r["batch"] == 32 for r in sel) and len(sel) == 2:
            tot["h100_floor_fwd_ms"], tot["h100_floor_fwd_bwd_ms"] = H100_FLOOR_MS[dtype]
        out.append(tot)
    return out


# --------------------------------------------------------------------------------- training
def synthetic_batch(batch: int, input_size: int, device: torch.device,
                    channels_last: bool = False, seed: int = 0) -> dict:
    """Random images and targets of the training loss's shapes (Eq. 4): "image" (B, 3, S, S),
    "pose" (B, 48), "shape" (B, 10), "joints2d" (B, 21, 2) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, input_size, input_size, generator=g)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return {"image": images.to(device),
            "pose": (0.2 * torch.randn(batch, 48, generator=g)).to(device),
            "shape": (0.5 * torch.randn(batch, 10, generator=g)).to(device),
            "joints2d": torch.rand(batch, 21, 2, generator=g).to(device)}


def make_adam(model: torch.nn.Module, lr: float = 1e-4) -> torch.optim.Optimizer:
    """Adam with the no-weight-decay group of A_log, D, dt bias and position embeddings (the
    engine's optimiser, :func:`handssca.engine.trainer.make_optimizer`)."""
    from ..models import no_weight_decay_names

    nwd = set(no_weight_decay_names(model))
    groups = [{"params": [p for n, p in model.named_parameters() if n not in nwd]},
              {"params": [p for n, p in model.named_parameters() if n in nwd],
               "weight_decay": 0.0}]
    return torch.optim.Adam([grp for grp in groups if grp["params"]], lr=lr)


def training_step_fn(model: torch.nn.Module, batch: dict, device: torch.device,
                     amp: str = "none", channels_last: bool = False,
                     compile: bool = False) -> Callable[[], float]:
    """A closure running one whole training step of ``model`` (a :class:`HandSSCA`) on
    ``batch``: forward under the setting's autocast, the loss of Eq. 4 in fp32, backward, Adam.
    The model is prepared as the engine prepares it (:func:`handssca.engine.runtime.
    prepare_model`: on a GPU bf16-safe MANO parts, channels-last, compile). The closure returns
    the loss tensor (without waiting for the GPU)."""
    from ..engine.runtime import autocast, prepare_model

    raw = model.to(device).train()
    net = prepare_model(raw, device, amp=amp, channels_last=channels_last, compile=compile)
    opt = make_adam(raw)

    def step() -> float:
        with autocast(device, amp):
            pred = net(batch["image"])
        pred = {k: v.float() for k, v in pred.items()}
        loss = raw.compute_loss(pred, batch)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def training_throughput(model: torch.nn.Module, batch: int, input_size: int,
                        device: torch.device, amp: str = "none", channels_last: bool = False,
                        compile: bool = False, steps: int = 10, warmup: int = 3) -> dict:
    """Images per second of whole training steps (see :func:`training_step_fn`) on synthetic
    data, after ``warmup`` untimed steps (the first compiles, with ``compile``).

    Returns a dict: ``images_per_s``, ``step_ms`` (mean over the timed steps), ``step_min_ms``,
    ``steps``, ``warmup``, ``batch``, ``input_size``, ``loss`` (finite), ``peak_memory_bytes``
    (CUDA only, else None).
    """
    data = synthetic_batch(batch, input_size, device, channels_last)
    step = training_step_fn(model, data, device, amp, channels_last, compile)
    for _ in range(warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    loss = None
    t_all = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step()
        sync(device)
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_all
    return {"images_per_s": batch * steps / total, "step_ms": 1e3 * total / steps,
            "step_min_ms": 1e3 * min(times), "steps": steps, "warmup": warmup, "batch": batch,
            "input_size": input_size, "loss": float(loss.detach()),
            "peak_memory_bytes": (torch.cuda.max_memory_allocated(device)
                                  if device.type == "cuda" else None)}


# -------------------------------------------------------------------------------- profiling
def part_times(model: torch.nn.Module, images: torch.Tensor, device: torch.device,
               amp: str = "none", repeats: int = 3) -> Dict[str, float]:
    """Forward ms of each top-level part of a HandSSCA network (:data:`PARTS`), the median of
    ``repeats`` forwards under ``torch.no_grad`` (CUDA events on a GPU, the wall clock with a
    sync elsewhere)."""
    from ..engine.runtime import autocast

    marks: Dict[str, list] = {p: [] for p in PARTS if hasattr(model, p)}
    cuda = device.type == "cuda"
    handles, started = [], {}

    def pre(name):
        def hook(module, args):
            if cuda:
                ev = torch.cuda.Event(enable_timing=True)
                ev.record()
                started[name] = ev
            else:
                started[name] = time.perf_counter()
        return hook

    def post(name):
        def hook(module, args, out):
            if cuda:
                ev = torch.cuda.Event(enable_timing=True)
                ev.record()
                marks[name].append((started[name], ev))
            else:
                marks[name].append(1e3 * (time.perf_counter() - started[name]))
        return hook

    for name in marks:
        part = getattr(model, name)
        handles.append(part.register_forward_pre_hook(pre(name)))
        handles.append(part.register_forward_hook(post(name)))
    try:
        with torch.no_grad(), autocast(device, amp):
            for _ in range(repeats + 1):
                model(images)
        sync(device)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for name, ms in marks.items():
        vals = [a.elapsed_time(b) for a, b in ms] if cuda else ms
        out[name] = statistics.median(vals[1:])  # the first forward warms up
    return out


def profile_summary(step: Callable[[], object], device: torch.device, steps: int = 3,
                    top: int = 10) -> dict:
    """The operators with the most self time over ``steps`` calls of ``step`` under
    ``torch.profiler`` (GPU time on CUDA, CPU time elsewhere), each with its share of the total.
    Returns {"time": "device" | "cpu", "total_ms", "top": [{"name", "ms", "share", "calls"}]}."""
    from torch.profiler import ProfilerActivity, profile

    step()
    sync(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        sync(device)
    events = prof.key_averages()
    on_gpu = device.type == "cuda"

    def self_us(e) -> float:
        if on_gpu:
            return float(getattr(e, "self_device_time_total", None)
                         or getattr(e, "self_cuda_time_total", 0.0))
        return float(e.self_cpu_time_total)

    rows = [(e.key, self_us(e), e.count) for e in events]
    rows = [r for r in rows if r[1] > 0]
    total = sum(r[1] for r in rows) or 1.0
    rows.sort(key=lambda r: -r[1])
    return {"time": "device" if on_gpu else "cpu", "steps": steps,
            "total_ms": total / 1e3 / steps,
            "top": [{"name": k, "ms": us / 1e3 / steps, "share": us / total, "calls": c // steps}
                    for k, us, c in rows[:top]]}


# -------------------------------------------------------------------------------------- run
def _csv(text: str) -> List[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def run(args) -> int:
    """Check for CUDA, then measure the scans, the training throughput and the profile."""
    if not torch.cuda.is_available():
        print(CUDA_NEEDED, file=sys.stderr)
        return 2
    from ..hand import load_hand_model
    from ..models import build_model
    from ..ssm import available_backends
    from ..ssm.triton_scan import triton_available

    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    attentions, settings = _csv(args.attention), _csv(args.settings)
    bad = ([a for a in attentions if a not in ATTENTIONS]
           + [s for s in settings if s not in SETTINGS])
    if bad:
        print(f"bench gpu: unknown attention variants or settings {bad}; known: {ATTENTIONS}, "
              f"{tuple(SETTINGS)}", file=sys.stderr)
        return 2
    repeats = args.repeats or (3 if args.quick else 20)
    steps = args.steps or (2 if args.quick else 10)
    hw = hardware_info()
    vers = versions()
    print(f"bench gpu on {hw.get('gpu')}: torch {vers['torch']} (CUDA {vers['cuda']}, cuDNN "
          f"{vers['cudnn']}), mamba-ssm {vers['mamba_ssm'] or 'not installed'}, "
          f"Triton {vers['triton'] or 'not installed'}, "
          f"batch {args.batch}, input {args.input_size}")
    payload = {"benchmark": "gpu", "batch": args.batch, "input_size": args.input_size,
               "quick": bool(args.quick), "hardware": hw, "versions": vers,
               "device": torch.cuda.get_device_name(0), "commit": git_commit()}

    if not args.skip_scans:
        usable = available_backends(device) + ([TRITON] if triton_available() else [])
        backends = (_csv(args.scan_backends) if args.scan_backends
                    else ["mamba", TRITON, "chunked"])
        missing = [b for b in backends if b not in usable]
        backends = [b for b in backends if b in usable]
        bw = copy_bandwidth(device)
        rows = time_scans(backends, ("spatial", "channel"), args.batch, _csv(args.dtypes),
                          device, repeats=repeats, warmup=1 if args.quick else 3)
        totals = scan_totals(rows, bw)
        payload["scans"] = {"copy_bandwidth_bytes_per_s": bw, "rows": rows, "totals": totals,
                            "not_available": missing,
                            "h100_floor_ms": {k: {"fwd": v[0], "fwd_bwd": v[1]}
                                              for k, v in H100_FLOOR_MS.items()}}
        print(f"scans at batch {args.batch} (median of {repeats}); copy bandwidth "
              f"{bw / 1e9:.0f} GB/s{'; not available: ' + ', '.join(missing) if missing else ''}")
        print(f"{'shape':9}{'dtype':10}{'backend':9}{'fwd ms':>9}{'fwd+bwd ms':>12}")
        for r in rows:
            print(f"{r['shape']:9}{r['dtype']:10}{r['backend']:9}{r['fwd_ms']:>9.2f}"
                  f"{r['fwd_bwd_ms']:>12.2f}")
        print("both scans together, beside the floors (memory: bytes / copy bandwidth; H100: "
              "the estimate at batch 32)")
        if TRITON in backends:
            print(f"  ({TRITON}: the fused kernel, cross-scan and merge included, beside its own "
                  "memory floor)")
        for t in totals:
            print(f"  {t['backend']:8}{t['dtype']:10} fwd {t['fwd_ms']:.2f} ms "
                  f"(memory floor {t.get('memory_floor_fwd_ms', float('nan')):.2f}, H100 "
                  f"{t.get('h100_floor_fwd_ms', float('nan'))}), fwd+bwd {t['fwd_bwd_ms']:.2f} ms "
                  f"(memory floor {t.get('memory_floor_fwd_bwd_ms', float('nan')):.2f}, H100 "
                  f"{t.get('h100_floor_fwd_bwd_ms', float('nan'))})", flush=True)

    hand_model = load_hand_model()
    if not args.skip_training:
        results = []
        print(f"training throughput, batch {args.batch}, {args.input_size} x {args.input_size}, "
              f"{steps} timed steps")
        for attention in attentions:
            for name in settings:
                cfg = SETTINGS[name]
                torch.manual_seed(0)
                row = {"attention": attention, "setting": name, **cfg}
                try:
                    model = build_model(attention, args.input_size, hand_model=hand_model)
                    row.update(training_throughput(
                        model, args.batch, args.input_size, device, steps=steps,
                        warmup=(3 if cfg["compile"] else 2) if not args.quick else 1, **cfg))
                    print(f"  {attention:15}{name:28}{row['images_per_s']:>9.1f} images/s "
                          f"({row['step_ms']:.0f} ms/step)", flush=True)
                except Exception as exc:  # one failing setting must not lose the others
                    row["error"] = f"{type(exc).__name__}: {exc}"
                    print(f"  {attention:15}{name:28} failed: {row['error']}", flush=True)
                results.append(row)
                model = None
                torch.cuda.empty_cache()
        payload["training"] = results

    if args.profile and args.profile != "none":
        attention, _, name = args.profile.partition(":")
        if attention not in ATTENTIONS or name not in SETTINGS:
            print(f"bench gpu: --profile must be variant:setting, got {args.profile!r}",
                  file=sys.stderr)
            return 2
        cfg = SETTINGS[name]
        torch.manual_seed(0)
        model = build_model(attention, args.input_size, hand_model=hand_model)
        data = synthetic_batch(args.batch, args.input_size, device, cfg["channels_last"])
        step = training_step_fn(model, data, device, **cfg)
        summary = profile_summary(step, device, steps=2 if args.quick else 3)
        parts = part_times(model, data["image"], device, amp=cfg["amp"])
        payload["profile"] = {"attention": attention, "setting": name, **summary,
                              "forward_part_ms": parts}
        print(f"where the time goes ({attention}, {name}): forward ms per part "
              + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
        print(f"  top operators by GPU time per training step ({summary['total_ms']:.1f} ms):")
        for op in summary["top"]:
            print(f"    {op['share'] * 100:5.1f}%  {op['ms']:8.2f} ms  {op['name'][:70]}")

    out = args.out or (build_dir() / "bench" / "gpu.json")
    path = write_json_atomic(out, payload)
    print(f"wrote {path}")
    return 0
