"""Picks the kernel implementations: Triton on GPU, the torch references on CPU."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch

from pdtune.config import EngineConfig

BACKENDS = ("auto", "triton", "torch")


@dataclass(frozen=True)
class Ops:
    """The kernels one model instance calls; chosen once, passed explicitly to the layers."""

    backend: str
    rms_norm: Callable
    rotary_write_kv: Callable  # rotates q and k and writes k and v into the paged cache
    silu_and_mul: Callable
    plan_decode: Callable | None  # the decode work plan of a step; the torch path needs none
    decode_attention: Callable
    prefill_attention: Callable


def select_ops(backend: str, device: torch.device) -> Ops:
    from pdtune import kernels as k

    if backend not in BACKENDS:
        raise ValueError(f"attention backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = "triton" if device.type == "cuda" else "torch"
    if backend == "triton":
        return Ops("triton", k.rms_norm, k.rotary_write_kv, k.silu_and_mul,
                   k.plan_decode_work, k.paged_decode_attention, k.paged_prefill_attention)
    return Ops("torch", k.rms_norm_ref, k.rotary_write_kv_ref, k.silu_and_mul_ref,
               None, k.paged_decode_attention_ref, k.paged_prefill_attention_ref)


def resolve_block_size(config: EngineConfig) -> EngineConfig:
    """The config with its KV page size settled. Where decode attention bulk-copies its K/V tiles
    (TMA) page by page, the Triton kernels on a Hopper or later GPU, pages of 64 tokens hold its
    64-token tiles: on pdmux's 24- and 48-SM decode partitions of an H100 that read 1.2-1.3x faster
    than tiles gathered from 16-token pages (results/h100/session18). Elsewhere 16 tokens, which
    reuse cached prefixes at a finer grain."""
    if config.block_size is not None:
        return config
    from pdtune.model.loader import resolve_device

    device = resolve_device(config.device)
    tma = (device.type == "cuda" and config.attention_backend in ("auto", "triton")
           and torch.cuda.get_device_capability(device)[0] >= 9)
    return dataclasses.replace(config, block_size=64 if tma else 16)
