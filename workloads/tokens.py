"""Pseudo token ids: random draws, hash-keyed blocks, and compact Python lists of them."""

from __future__ import annotations

import numpy as np

FIRST_ID = 10  # ids below stay free for special tokens (BOS, EOS, padding) of any vocabulary
_INTS: list[int] = []  # one shared int object per token id


def check_vocab(vocab_size: int) -> None:
    if vocab_size <= FIRST_ID:
        raise ValueError(f"vocab_size must be above {FIRST_ID}, got {vocab_size}")


def random_tokens(rng: np.random.Generator, n: int, vocab_size: int) -> np.ndarray:
    return rng.integers(FIRST_ID, vocab_size, n, dtype=np.int64)


def hashed_blocks(keys: np.ndarray, block_size: int, vocab_size: int, seed: int) -> np.ndarray:
    """One block of ids per key, a pure function of (seed, key, position), shape (len(keys), block_size).

    Counter-based (splitmix64), so equal keys give equal blocks in any order and any process,
    and a block is rebuilt from its key alone without keeping one generator per key.
    """
    pos = np.arange(block_size, dtype=np.uint64)
    salt = np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64)
    x = (np.asarray(keys, dtype=np.uint64)[:, None] << np.uint64(20)) ^ pos ^ salt
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x % np.uint64(vocab_size - FIRST_ID)).astype(np.int64) + FIRST_ID


def token_list(ids: np.ndarray) -> list[int]:
    """ids as a list of shared int objects: 8 bytes a token instead of 36, for workloads of 100M tokens."""
    top = int(ids.max(initial=-1)) + 1
    if top > len(_INTS):
        _INTS.extend(range(len(_INTS), top))
    return list(map(_INTS.__getitem__, ids.tolist()))
