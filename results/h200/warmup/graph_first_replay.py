"""What a decode graph's first launch costs beyond its later ones: the engine's 32-layer decode
step (Llama-3.1-8B shape, dummy bf16 weights) captured for a few batch buckets on the whole GPU
and on a 24-SM green-context stream, then replayed five times each, timed on the host (launch to
completion) and by CUDA events. The engine now replays every graph once at capture; before that,
a bucket's first launch fell inside the first served step that reached it.

python graph_first_replay.py OUT_DIR"""

import json
import os
import sys
import time

import torch

from pdtune.config import EngineConfig
from pdtune.engine import Engine
from pdtune.executor.cuda_graphs import DecodeGraphs
from pdtune.executor.partitions import make_partitions
from pdtune.perf.environment import environment

BUCKETS = (1, 16, 64)
REPLAYS = 5


def timed_replays(graphs: DecodeGraphs, size: int) -> list[dict]:
    """Captures a fresh graph of `size` rows on the set's stream and times its first replays."""
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode():
        with torch.cuda.graph(graph, pool=graphs.pool, stream=graphs.stream):
            graphs._forward(size)
    rows = []
    for i in range(REPLAYS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.cuda.stream(graphs.stream):
            start.record(graphs.stream)
            graph.replay()
            end.record(graphs.stream)
        end.synchronize()
        rows.append({"replay": i, "host_ms": (time.perf_counter() - t0) * 1e3, "gpu_ms": start.elapsed_time(end)})
    return rows


def main(out_dir: str) -> None:
    engine = Engine(EngineConfig(model="llama-3.1-8b", load_format="dummy", mode="chunked", num_kv_blocks=2048,
                                 max_num_seqs=max(BUCKETS), max_model_len=2048))
    model, blocks_per_seq = engine.runner.model, 2048 // engine.config.block_size
    decode_stream = next(p for p in make_partitions(((112, 20),)) if p.decode_sms and p.prefill_sms).decode_stream
    results = []
    for name, stream in (("132 SMs", torch.cuda.Stream()), ("24 SMs", decode_stream)):
        graphs = DecodeGraphs(model, max(BUCKETS), blocks_per_seq, stream)
        for size in BUCKETS:
            for row in timed_replays(graphs, size):
                results.append({"stream": name, "batch": size, **row})
                print(results[-1])
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "graph-first-replay.json"), "w") as f:
        json.dump({"environment": environment(), "rows": results}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
