"""Bytes and FLOPs of the model's steps: the numerators of the rooflines."""

from __future__ import annotations

from pdtune.model.arch import ModelArch


def num_params(a: ModelArch) -> int:
    per_layer = (a.hidden_size * (a.q_size + 2 * a.kv_size) + a.q_size * a.hidden_size
                 + 3 * a.hidden_size * a.intermediate_size + 2 * a.hidden_size)
    embed = a.vocab_size * a.hidden_size
    return a.num_layers * per_layer + embed * (1 if a.tie_word_embeddings else 2) + a.hidden_size


def kv_bytes_per_token(a: ModelArch, itemsize: int) -> int:
    return 2 * a.num_layers * a.kv_size * itemsize


def decode_bytes(a: ModelArch, itemsize: int, batch: int, context: int) -> int:
    """Weights read once plus every sequence's KV read once: the decode step's memory floor."""
    return num_params(a) * itemsize + batch * context * kv_bytes_per_token(a, itemsize)


def prefill_flops(a: ModelArch, tokens: int) -> float:
    """Linear layers (2 FLOPs per parameter per token, without the embedding lookup, with one
    LM-head row) plus causal attention (QK^T and PV over half the square)."""
    linear = 2 * tokens * (num_params(a) - a.vocab_size * a.hidden_size * (1 if a.tie_word_embeddings else 2))
    lm_head = 2 * a.vocab_size * a.hidden_size
    attention = 2 * 2 * a.num_layers * a.num_heads * a.head_dim * tokens * tokens / 2
    return linear + lm_head + attention
