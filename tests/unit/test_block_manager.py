"""Paged KV bookkeeping: reference counts, prefix sharing, LRU eviction of free cached blocks."""

from pdtune.request.sampling import SamplingParams
from pdtune.request.sequence import Sequence
from pdtune.scheduler.block_manager import BlockManager


def seq(tokens):
    return Sequence(list(tokens), SamplingParams())


def run_prefill(bm: BlockManager, s: Sequence) -> None:
    bm.allocate(s)
    bm.append_slots(s, len(s) - s.num_computed_tokens)
    s.num_computed_tokens = len(s)
    bm.commit_full_blocks(s)


def test_shared_prefix_blocks_are_reference_counted():
    bm = BlockManager(num_blocks=8, block_size=4)
    a, b = seq(range(10)), seq(list(range(8)) + [99, 98, 97])
    run_prefill(bm, a)
    run_prefill(bm, b)
    assert b.num_cached_tokens == 8 and b.block_table[:2] == a.block_table[:2]
    assert [bm.blocks[i].ref_count for i in a.block_table[:2]] == [2, 2]
    bm.free_sequence(a)
    assert [bm.blocks[i].ref_count for i in b.block_table[:2]] == [1, 1]
    bm.free_sequence(b)
    assert bm.num_free_blocks == 8


def test_free_cached_blocks_are_reused_and_evicted_least_recent_first():
    bm = BlockManager(num_blocks=4, block_size=4)
    a = seq(range(9))  # two full blocks + one partial
    run_prefill(bm, a)
    bm.free_sequence(a)
    again = seq(range(9))
    assert len(bm.match_prefix(again)) == 2  # still findable while free
    filler = seq(range(100, 113))  # needs all 4 blocks: evicts every cached block
    run_prefill(bm, filler)
    bm.free_sequence(filler)
    assert bm.match_prefix(seq(range(9))) == []


def test_the_last_prompt_token_is_never_served_from_cache():
    bm = BlockManager(num_blocks=8, block_size=4)
    a = seq(range(8))
    run_prefill(bm, a)
    b = seq(range(8))
    assert len(bm.match_prefix(b)) == 1  # only the first block: the second holds the last token


def test_can_allocate_counts_hits_that_sit_in_the_free_list():
    bm = BlockManager(num_blocks=3, block_size=4)
    a = seq(range(9))
    run_prefill(bm, a)
    bm.free_sequence(a)
    b = seq(list(range(8)) + [50, 51, 52, 53, 54])  # 2 cached blocks + 5 new tokens = 2 more blocks
    assert not bm.can_allocate(b, 5)
    assert bm.can_allocate(seq(list(range(8)) + [50, 51]), 2)



def test_blocks_freed_while_held_stay_out_of_the_free_list_until_their_step_is_released():
    bm = BlockManager(num_blocks=6, block_size=4)
    a, b = seq(range(9)), seq(range(50, 55))
    run_prefill(bm, a)  # 3 blocks, two of them full and published
    run_prefill(bm, b)  # 2 blocks
    a_full = list(a.block_table)[:2]
    bm.hold_tag = 1
    bm.free_sequence(a)
    bm.hold_tag = 2
    bm.free_sequence(b)
    assert bm.num_free_blocks == 1 and not bm.can_allocate(seq(range(200, 208)), 8)
    again = seq(range(9))
    bm.allocate(again)  # a held full block is still found and may be shared: no decode writes it
    assert list(again.block_table) == a_full and bm.num_free_blocks == 1
    bm.release_held(upto=1)  # a's partial block (its full ones are taken again); b's stay held
    assert bm.num_free_blocks == 2
    bm.hold_tag = None
    bm.release_held()
    assert bm.num_free_blocks == 4 and not bm.held
