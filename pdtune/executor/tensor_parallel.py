"""Tensor parallelism: Megatron-style shards on N processes; rank 0 schedules and broadcasts each
step's inputs, every rank runs the same forward, all-reduces join the shards.

Three communicators: the step plans travel on a gloo group (host objects), and the activations'
collectives on two data groups, one for decode and one for prefill (gloo on the CPU, NCCL on
GPUs), so that under pdmux a prefill block's all-reduces on the prefill SMs never queue behind, or
order against, the decode step's on the decode SMs. Sequential and chunked steps use the decode
group. torch's NCCL group launches a synchronous collective on the current stream (pytorch PR
150398), so under pdmux each all-reduce runs on its phase's green-context SMs; NCCL warns that two
communicators can deadlock when one's kernel keeps the other's from being scheduled, which disjoint
SM partitions rule out."""

from __future__ import annotations

import dataclasses
import os
import socket
from contextlib import contextmanager

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pdtune.errors import PdtuneError

# HF parameter name endings -> the dimension their shards split (0: output rows, 1: input columns).
_COLUMN = ("q_proj.weight", "k_proj.weight", "v_proj.weight", "q_proj.bias", "k_proj.bias", "v_proj.bias",
           "gate_proj.weight", "up_proj.weight", "embed_tokens.weight", "lm_head.weight")
_ROW = ("o_proj.weight", "down_proj.weight")


# NVLink multicast stays off in NCCL, torch's symmetric memory and NVSHMEM: on the lent multi-GPU
# hosts a program using it can take the shared GPUs out of service, and NCCL would otherwise pick
# it for all-reduce on NVSwitch hosts. Every rank sets these before it makes a communicator.
NCCL_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
PHASES = ("decode", "prefill")


class TPGroup:
    """This rank's place in the tensor-parallel group and the communicator of the phase running."""

    def __init__(self, rank: int, size: int, groups: dict[str, dist.ProcessGroup]):
        self.rank, self.size, self.groups = rank, size, groups
        self.current = groups["decode"]

    @contextmanager
    def phase(self, name: str):
        """Collectives inside go to the `name` phase's communicator."""
        previous, self.current = self.current, self.groups[name]
        try:
            yield
        finally:
            self.current = previous

    def all_reduce(self, x: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(x, group=self.current)
        return x

    def all_gather_last(self, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(self.size)]
        dist.all_gather(parts, x.contiguous(), group=self.current)
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


def join_group(rank: int, size: int, port: int, device_index: int | None) -> TPGroup:
    """Joins this process to the group: gloo for the step plans, the data groups on `device_index`
    (NCCL) or on the CPU (gloo). Every rank makes the groups in the same order, as torch requires."""
    os.environ.update(NCCL_ENV)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    if device_index is not None:
        torch.cuda.set_device(device_index)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    backend = "gloo" if device_index is None else "nccl"
    groups = {phase: dist.new_group(list(range(size)), backend=backend) for phase in PHASES}
    if device_index is not None:  # NCCL makes a communicator at its first collective: not inside a graph capture
        for group in groups.values():
            dist.all_reduce(torch.zeros(1, device=f"cuda:{device_index}"), group=group)
    return TPGroup(rank, size, groups)


def _worker(rank: int, size: int, config, port: int, device_index: int | None, setup_queue) -> None:
    from pdtune.executor.model_runner import ModelRunner
    from pdtune.executor.pdmux import PdmuxMirror
    from pdtune.model.loader import load_model

    tp = join_group(rank, size, port, device_index)
    try:
        loaded = load_model(config, tp)
    except PdtuneError:
        return  # rank 0 meets the same error and reports it
    num_blocks, max_model_len = setup_queue.get()
    runner = ModelRunner(loaded, config, num_blocks, max_model_len, tp)
    mirror = PdmuxMirror(runner, config, max_model_len) if config.mode == "pdmux" else None
    while True:
        step = broadcast_step(None)
        if step is None:
            break
        if mirror is not None:
            mirror.run(step)
        else:
            runner.forward(step)
    dist.destroy_process_group()


def broadcast_step(step):
    """Rank 0 sends the step's host-side inputs (the step plan as tensors); others receive them."""
    box = [step]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _devices(config, size: int) -> list[int | None]:
    """Each rank's GPU: this process's and the next size-1 (a data-parallel replica starts at its
    own); None for every rank on the CPU."""
    if not (config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())):
        return [None] * size
    first, count = torch.cuda.current_device(), torch.cuda.device_count()
    if first + size > count:
        raise PdtuneError(f"tensor parallel size {size} needs {size} GPUs from cuda:{first}; {count} are visible")
    return [first + r for r in range(size)]


class TPWorkers:
    """Starts ranks 1..N-1 and joins rank 0 (this process) to their group."""

    def __init__(self, config, size: int):
        devices = _devices(config, size)
        port = _free_port()
        ctx = mp.get_context("spawn")
        self.queues = [ctx.Queue() for _ in range(1, size)]
        worker_config = config if devices[0] is not None else dataclasses.replace(config, device="cpu")
        self.procs = [ctx.Process(target=_worker, args=(r, size, worker_config, port, devices[r], q), daemon=True)
                      for r, q in zip(range(1, size), self.queues)]
        for p in self.procs:
            p.start()
        self.group = join_group(0, size, port, devices[0])

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
