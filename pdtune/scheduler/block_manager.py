"""Paged KV memory: reference-counted blocks, prefix reuse by chained block hashes, LRU eviction."""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from dataclasses import dataclass

from pdtune.request.sequence import BlockTable, Sequence


def chain_hash(parent: bytes, token_ids: list[int]) -> bytes:
    """A full block's identity is its tokens and everything before it."""
    return hashlib.blake2b(parent + struct.pack(f"<{len(token_ids)}q", *token_ids), digest_size=16).digest()


@dataclass
class Block:
    block_id: int
    ref_count: int = 0
    hash: bytes | None = None


class BlockManager:
    """Free blocks whose contents are still valid stay findable by hash until reused (LRU)."""

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.free: OrderedDict[int, None] = OrderedDict((i, None) for i in range(num_blocks))  # LRU order
        self.cached: dict[bytes, int] = {}  # hash -> block id
        self.hashes: dict[str, list[bytes]] = {}  # request id -> hashes of its full blocks
        self.committed: dict[str, int] = {}  # request id -> leading blocks already published
        self.prefix_queries = 0  # prompt tokens looked up
        self.prefix_hits = 0  # of those, found in the cache
        # Overlapped pdmux: while a decode step that may still read or write freed blocks runs on
        # its stream, they wait here (block id -> that step's tag), out of the free list, for
        # `release_held`: a prefill on another stream must not write them under the decode. A
        # held block stays findable by its hash (reading a full block is safe: no decode writes it).
        self.hold_tag: int | None = None
        self.held: dict[int, int] = {}

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free_blocks(self) -> int:
        return len(self.free)

    @property
    def hit_rate(self) -> float:
        return self.prefix_hits / self.prefix_queries if self.prefix_queries else 0.0

    def blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def _full_block_hashes(self, seq: Sequence, num_blocks: int) -> list[bytes]:
        known = self.hashes.setdefault(seq.request_id, [])
        parent = known[-1] if known else b""
        for i in range(len(known), num_blocks):
            parent = chain_hash(parent, seq.block_tokens(i, self.block_size))
            known.append(parent)
        return known if len(known) == num_blocks else known[:num_blocks]

    def _take(self, block_id: int) -> None:
        block = self.blocks[block_id]
        if block.ref_count == 0:
            if block_id in self.free:
                del self.free[block_id]
            else:
                del self.held[block_id]
        block.ref_count += 1

    def _take_free(self) -> int:
        block_id = next(iter(self.free))
        block = self.blocks[block_id]
        if block.hash is not None and self.cached.get(block.hash) == block_id:
            del self.cached[block.hash]
        block.hash = None
        self._take(block_id)
        return block_id

    def match_prefix(self, seq: Sequence) -> list[int]:
        """Cached blocks of the prompt; the last prompt token is always recomputed for its logits."""
        if not self.enable_prefix_caching:
            return []
        hit = []
        for h in self._full_block_hashes(seq, (len(seq) - 1) // self.block_size):
            block_id = self.cached.get(h)
            if block_id is None:
                break
            hit.append(block_id)
        return hit

    def can_allocate(self, seq: Sequence, num_tokens: int, hit: list[int] | None = None) -> bool:
        """Whether `num_tokens` more tokens of a waiting sequence fit, counting prefix hits
        (`hit`: the caller's match_prefix result, to look it up once)."""
        hit = self.match_prefix(seq) if hit is None else hit
        reusable_free = sum(1 for b in hit if b in self.free)
        need = self.blocks_needed(len(hit) * self.block_size + num_tokens) - len(hit)
        return need <= self.num_free_blocks - reusable_free

    def allocate(self, seq: Sequence, hit: list[int] | None = None) -> None:
        """Gives a waiting sequence its cached prefix blocks; sets how many tokens it may skip."""
        hit = self.match_prefix(seq) if hit is None else hit
        for block_id in hit:
            self._take(block_id)
        seq.block_table = BlockTable(hit)
        seq.num_cached_tokens = seq.num_computed_tokens = len(hit) * self.block_size
        self.prefix_queries += seq.num_prompt_tokens
        self.prefix_hits += seq.num_cached_tokens

    def can_append(self, seq: Sequence, num_new_tokens: int) -> bool:
        need = self.blocks_needed(seq.num_computed_tokens + num_new_tokens) - len(seq.block_table)
        return need <= self.num_free_blocks

    def append_slots(self, seq: Sequence, num_new_tokens: int) -> None:
        """Grows the block table to hold `num_new_tokens` more tokens of KV."""
        need = self.blocks_needed(seq.num_computed_tokens + num_new_tokens) - len(seq.block_table)
        for _ in range(need):
            seq.block_table.append(self._take_free())

    def commit_full_blocks(self, seq: Sequence) -> None:
        """Publishes the blocks whose KV is now complete so later requests can share them."""
        if not self.enable_prefix_caching:
            return
        num_full = seq.num_computed_tokens // self.block_size
        done = self.committed.get(seq.request_id, 0)
        if num_full <= done:
            return
        hashes = self._full_block_hashes(seq, num_full)
        self.committed[seq.request_id] = num_full
        for i in range(done, num_full):
            h, block = hashes[i], self.blocks[seq.block_table[i]]
            if block.hash is None and h not in self.cached:
                block.hash = h
                self.cached[h] = block.block_id

    def reset_prefix_cache(self) -> None:
        """Forgets every cached prefix and the hit counters, so benchmark runs start cold alike."""
        if self.num_free_blocks != self.num_blocks:
            raise RuntimeError("the prefix cache can only be reset while no request holds blocks")
        for block in self.blocks:
            block.hash = None
        self.cached.clear()
        self.prefix_queries = self.prefix_hits = 0

    def free_sequence(self, seq: Sequence) -> None:
        for block_id in reversed(seq.block_table):  # tail first, so the prefix is evicted last
            block = self.blocks[block_id]
            block.ref_count -= 1
            if block.ref_count == 0:
                if self.hold_tag is None:
                    self.free[block_id] = None
                else:
                    self.held[block_id] = self.hold_tag
        seq.block_table = BlockTable()
        self.hashes.pop(seq.request_id, None)
        self.committed.pop(seq.request_id, None)

    def release_held(self, upto: int | None = None) -> None:
        """Frees the blocks held for the steps tagged `upto` and before (all when None): those steps are done."""
        for block_id, tag in list(self.held.items()):
            if upto is None or tag <= upto:
                del self.held[block_id]
                self.free[block_id] = None
