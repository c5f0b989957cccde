"""Bytes and FLOPs of the model's steps: the numerators of the rooflines."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class PrefillShape:
    """A prefill batch as its cost sees it: new tokens (the linear layers), the sum over its
    sequences of new tokens squared (causal attention among them) and of new times cached tokens
    (attention to a reused prefix), and the sequences (one LM-head row each)."""

    tokens: int = 0
    square: int = 0
    cross: int = 0
    sequences: int = 0

    @classmethod
    def single(cls, tokens: int, reused: int = 0) -> PrefillShape:
        return cls(tokens, tokens * tokens, tokens * reused, 1)

    @classmethod
    def of_chunks(cls, chunks) -> PrefillShape:
        """A step's scheduled chunks (each its new tokens after those already computed)."""
        return sum((cls.single(c.num_new_tokens, c.seq.num_computed_tokens) for c in chunks), cls())

    def __add__(self, other: PrefillShape) -> PrefillShape:
        return PrefillShape(self.tokens + other.tokens, self.square + other.square, self.cross + other.cross,
                            self.sequences + other.sequences)


def batch_prefill_flops(a: ModelArch, shape: PrefillShape) -> float:
    """Linear layers (2 FLOPs per parameter per token, without the embedding lookup, with one
    LM-head row per sequence) plus attention: QK^T and PV over half of each new square (causal)
    and over every new x cached pair."""
    linear = 2 * shape.tokens * (num_params(a) - a.vocab_size * a.hidden_size * (1 if a.tie_word_embeddings else 2))
    lm_head = 2 * shape.sequences * a.vocab_size * a.hidden_size
    attention = 2 * 2 * a.num_layers * a.num_heads * a.head_dim * (shape.square / 2 + shape.cross)
    return linear + lm_head + attention


def prefill_flops(a: ModelArch, tokens: int, reused: int = 0) -> float:
    """One sequence's prefill of `tokens` new tokens after `reused` cached ones."""
    return batch_prefill_flops(a, PrefillShape.single(tokens, reused))
