"""Times pdtune's own decode and prefill steps on synthetic block tables over a random KV pool."""

from __future__ import annotations

import torch

from pdtune.engine import Engine
from pdtune.executor.model_runner import StepInputs
from pdtune.model.attention import AttentionMetadata
from pdtune.perf.timing import time_back_to_back_ms, time_ms


def fill_kv_randomly(engine: Engine, seed: int = 0) -> None:
    """Timing over zeros can flatter kernels; the pool gets values of a trained model's scale."""
    gen = torch.Generator(device=engine.runner.device).manual_seed(seed)
    for layer_cache in engine.runner.kv_cache.flatten(0, 1):
        layer_cache.normal_(0.0, 1.0, generator=gen)


def _block_tables(engine: Engine, lengths: list[int]) -> torch.Tensor | None:
    """Random distinct pool blocks for sequences of these token counts (rows padded with block 0)."""
    bs = engine.config.block_size
    blocks = [-(-n // bs) for n in lengths]
    if sum(blocks) > engine.num_kv_blocks:
        return None
    pool = torch.randperm(engine.num_kv_blocks)[: sum(blocks)].to(torch.int32)
    table = torch.zeros(len(lengths), max(blocks), dtype=torch.int32)
    for row, chunk in zip(table, pool.split(blocks)):
        row[: len(chunk)] = chunk
    return table


def decode_inputs(engine: Engine, batch: int, context: int,
                  long_context: int | None = None) -> tuple[torch.Tensor, ...] | None:
    """Host tensors of one decode step (ids, positions, slots, seq_lens, block tables) for `batch`
    sequences with `context` cached tokens each (the first one `long_context` instead, if given:
    one long sequence beside short ones); None when the pool is too small."""
    contexts = torch.full((batch,), context, dtype=torch.int64)
    if long_context is not None:
        contexts[0] = long_context
    bt = _block_tables(engine, (contexts + 1).tolist())
    if bt is None:
        return None
    bs = engine.config.block_size
    ids = torch.randint(0, engine.loaded.arch.vocab_size, (batch,))
    slots = bt.gather(1, (contexts // bs)[:, None]).squeeze(1).to(torch.int64) * bs + contexts % bs
    return ids, contexts, slots, (contexts + 1).to(torch.int32), bt


def decode_step_inputs(engine: Engine, batch: int, context: int, long_context: int | None = None) -> StepInputs | None:
    """`decode_inputs` as the engine's executor takes a step (host tensors, no sequences)."""
    host = decode_inputs(engine, batch, context, long_context)
    if host is None:
        return None
    ids, positions, slots, seq_lens, bt = host
    meta = AttentionMetadata(slots, 0, None, None, None, seq_lens, bt)
    return StepInputs([], ids, positions, meta, torch.arange(batch), [], num_logits=batch)


def prefill_step_inputs(engine: Engine, tokens: int, fresh: bool = True, reused: int = 0) -> StepInputs | None:
    """Host tensors of one sequence's prefill of `tokens` new tokens after `reused` cached ones
    (a prefix-cache hit: attention also reads them from the pool). A fresh prompt (`fresh`, no
    reuse) takes the engine's path for a prompt with no cached prefix; otherwise the paged Triton
    kernel (the path of prefix-cache hits and prefill chunks) does the attention."""
    total = reused + tokens
    bt = _block_tables(engine, [total])
    if bt is None:
        return None
    bs = engine.config.block_size
    pos = torch.arange(reused, total)
    slots = bt[0].to(torch.int64)[pos // bs] * bs + pos % bs
    meta = AttentionMetadata(slots, tokens, torch.tensor([0, tokens], dtype=torch.int32),
                             torch.tensor([total], dtype=torch.int32), bt, None, None,
                             fresh_prefill_lens=[tokens] if fresh and not reused else None)
    ids = torch.randint(0, engine.loaded.arch.vocab_size, (tokens,))
    return StepInputs([], ids, pos, meta, torch.tensor([tokens - 1]), [])


def prefill_inputs(engine: Engine, tokens: int, fresh: bool = True,
                   reused: int = 0) -> tuple[torch.Tensor, torch.Tensor, AttentionMetadata] | None:
    """`prefill_step_inputs` on the device, for calling the model directly."""
    inputs = prefill_step_inputs(engine, tokens, fresh, reused)
    return None if inputs is None else engine.runner.to_device(inputs)


def decode_step_ms(engine: Engine, batch: int, context: int, use_graphs: bool,
                   long_context: int | None = None, back_to_back: bool = False) -> float | None:
    """One decode step (all layers, LM head) as the engine's executor runs it: its inputs
    uploaded from pinned host memory, then the decode graph replayed (`use_graphs`) or every
    kernel launched eagerly (no graph pieces either). One step on an idle GPU, or with
    `back_to_back` one of a run of steps issued without waiting (the host ahead of the GPU, as in
    overlapped scheduling)."""
    inputs = decode_step_inputs(engine, batch, context, long_context)
    runner = engine.runner
    if inputs is None or (use_graphs and (runner.graphs is None or runner.graphs.bucket(batch) is None)):
        return None

    @torch.inference_mode()
    def step():
        if use_graphs:
            return runner.decode_logits(inputs, runner.graphs)
        ids, positions, meta = runner.to_device(inputs)
        return runner.logits_at(runner.model(ids, positions, meta), inputs)

    return (time_back_to_back_ms if back_to_back else time_ms)(step, runner.device)


def prefill_ms(engine: Engine, tokens: int, iters: int = 5, fresh: bool = True) -> float | None:
    """One sequence of `tokens` new tokens in one eager step, logits of its last token."""
    inputs = prefill_inputs(engine, tokens, fresh)
    if inputs is None:
        return None
    ids, positions, meta = inputs
    model = engine.runner.model

    @torch.inference_mode()
    def step():
        return model.compute_logits(model(ids, positions, meta)[-1:])

    return time_ms(step, engine.runner.device, iters=iters, warmup=2)
