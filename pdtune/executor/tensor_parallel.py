"""Tensor parallelism: Megatron-style shards on N processes; rank 0 schedules and broadcasts each
step's inputs, every rank runs the same forward, all-reduces join the shards."""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pdtune.errors import PdtuneError

# HF parameter name endings -> the dimension their shards split (0: output rows, 1: input columns).
_COLUMN = ("q_proj.weight", "k_proj.weight", "v_proj.weight", "q_proj.bias", "k_proj.bias", "v_proj.bias",
           "gate_proj.weight", "up_proj.weight", "embed_tokens.weight", "lm_head.weight")
_ROW = ("o_proj.weight", "down_proj.weight")


@dataclass(frozen=True)
class TPGroup:
    rank: int
    size: int

    def all_reduce(self, x: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(x)
        return x

    def all_gather_last(self, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(self.size)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=-1)

    def shard(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a full HF-named checkpoint tensor."""
        if name.endswith(_COLUMN):
            return tensor.chunk(self.size, dim=0)[self.rank]
        if name.endswith(_ROW):
            return tensor.chunk(self.size, dim=1)[self.rank]
        return tensor


def check_divisible(arch, size: int) -> None:
    for what, value in (("attention heads", arch.num_heads), ("KV heads", arch.num_kv_heads),
                        ("intermediate size", arch.intermediate_size), ("vocabulary", arch.vocab_size)):
        if value % size:
            raise PdtuneError(f"tensor parallel size {size} does not divide the model's {what} ({value})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, size: int, config, port: int, num_kv_blocks_queue) -> None:
    from pdtune.executor.model_runner import ModelRunner
    from pdtune.model.loader import load_model

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    tp = TPGroup(rank, size)
    try:
        loaded = load_model(config, tp)
    except PdtuneError:
        return  # rank 0 meets the same error and reports it
    num_blocks, max_model_len = num_kv_blocks_queue.get()
    runner = ModelRunner(loaded, config, num_blocks, max_model_len, tp)
    while True:
        inputs = broadcast_step(None)
        if inputs is None:
            break
        runner.forward(inputs)
    dist.destroy_process_group()


def broadcast_step(inputs):
    """Rank 0 sends the step's host-side inputs (the step plan as tensors); others receive them."""
    box = [inputs]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class TPWorkers:
    """Starts ranks 1..N-1 and joins rank 0 (this process) to their group."""

    def __init__(self, config, size: int):
        if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
            raise PdtuneError("tensor parallelism runs on the CPU (gloo) for now; NCCL on GPUs is not built yet")
        port = _free_port()
        ctx = mp.get_context("spawn")
        self.queues = [ctx.Queue() for _ in range(1, size)]
        worker_config = dataclasses.replace(config, device="cpu")
        self.procs = [ctx.Process(target=_worker, args=(r, size, worker_config, port, q), daemon=True)
                      for r, q in zip(range(1, size), self.queues)]
        for p in self.procs:
            p.start()
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=size)
        self.group = TPGroup(0, size)

    def start_runners(self, num_kv_blocks: int, max_model_len: int) -> None:
        for q in self.queues:
            q.put((num_kv_blocks, max_model_len))

    def close(self) -> None:
        if dist.is_initialized():
            broadcast_step(None)
            dist.destroy_process_group()
        for p in self.procs:
            p.join(timeout=30)

    def abort(self) -> None:
        """Start-up failed on rank 0: the workers are not in the step loop, so stop them."""
        for p in self.procs:
            p.terminate()
            p.join(timeout=30)
        if dist.is_initialized():
            dist.destroy_process_group()
