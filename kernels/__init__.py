"""Triton kernels of the engine, each beside the torch reference that is its CPU path."""

from .decode_attention import (
    DecodePlan,
    paged_decode_attention,
    paged_decode_attention_ref,
    plan_decode_work,
    plan_decode_work_ref,
)
from .prefill_attention import paged_prefill_attention, paged_prefill_attention_ref, prefill_tile_variants
from .rmsnorm import rms_norm, rms_norm_ref
from .rotary import apply_rotary_ref, build_cos_sin_cache, rotary_write_kv, rotary_write_kv_ref, write_kv_ref
from .silu_mul import silu_and_mul, silu_and_mul_ref

__all__ = [
    "DecodePlan",
    "apply_rotary_ref",
    "build_cos_sin_cache",
    "paged_decode_attention",
    "paged_decode_attention_ref",
    "paged_prefill_attention",
    "paged_prefill_attention_ref",
    "plan_decode_work",
    "plan_decode_work_ref",
    "prefill_tile_variants",
    "rms_norm",
    "rms_norm_ref",
    "rotary_write_kv",
    "rotary_write_kv_ref",
    "silu_and_mul",
    "silu_and_mul_ref",
    "write_kv_ref",
]
