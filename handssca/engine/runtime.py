"""Where and how the network runs: device choice, mixed precision, memory layout, compilation.

- Device: CUDA when available, else the CPU; ``--device`` overrides (``cpu``, ``cuda``,
  ``cuda:1``, ...).
- On a GPU: bf16 autocast (the profile's ``amp``), channels-last tensors, optional
  ``torch.compile``. The MANO head and the MANO layer always run in fp32: the Gram-Schmidt of the
  6D rotations and the skinning of 778 vertices lose millimetres in bf16 (8 bits of mantissa on
  coordinates of ~0.1 m is ~0.4 mm), and the loss of Eq. 4 weighs those millimetres by 1e4.
- On the CPU: fp32 throughout.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Optional

import torch
import torch.nn as nn


def pick_device(device: Optional[str] = None) -> torch.device:
    """The device to run on: ``device`` when given ("cpu", "cuda", "cuda:0", "mps", or "auto"),
    else CUDA when available, else the CPU.

    Raises:
        ValueError: an unknown device string, or a CUDA device on a machine without one.
    """
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"--device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine (use 'cpu')")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"--device {device}: MPS is not available on this machine")
    return dev


def device_name(device: torch.device) -> str:
    """A human-readable device name for provenance ("cpu", "NVIDIA H100 80GB HBM3", ...)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def autocast(device: torch.device, amp: str = "bf16"):
    """The autocast context of a step: bf16 on CUDA when ``amp == "bf16"``, else nothing."""
    if device.type == "cuda" and amp == "bf16":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _fp32_forward(module: nn.Module, device_type: str):
    inner = type(module).forward

    @functools.wraps(inner)
    def forward(*args, **kwargs):
        args = [a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args]
        kwargs = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
                  for k, v in kwargs.items()}
        with torch.autocast(device_type=device_type, enabled=False):
            return inner(module, *args, **kwargs)

    return forward


def keep_fp32(model: nn.Module, device: torch.device) -> nn.Module:
    """Make the MANO head and MANO layer of ``model`` run in fp32 under autocast.

    Their ``forward`` is replaced on the instance (the state-dict names are unchanged), with
    floating inputs cast to fp32 and autocast disabled inside.
    """
    for name in ("mano_head", "hand_layer"):
        part = getattr(model, name, None)
        if part is not None:
            part.forward = _fp32_forward(part, device.type)
    return model


def prepare_model(model: nn.Module, device: torch.device, amp: str = "bf16",
                  channels_last: bool = True, compile: bool = False) -> nn.Module:
    """Move ``model`` to ``device`` and apply the GPU settings (fp32 MANO parts under bf16,
    channels-last, ``torch.compile``). Returns the module to call (compiled or not); the
    original stays reachable as ``._orig_mod`` when compiled."""
    model = model.to(device)
    if device.type == "cuda":
        if amp == "bf16":
            keep_fp32(model, device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if compile:
            model = torch.compile(model)
    return model


def to_device(batch: dict, device: torch.device, channels_last: bool = False) -> dict:
    """Move the tensors of a collated batch to ``device`` (images channels-last when asked)."""
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            v = v.to(device, non_blocking=True)
            if k == "image" and channels_last and device.type == "cuda":
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out
