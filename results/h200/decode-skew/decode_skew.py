"""Decode attention with one long context beside short ones: the kernel before the work plan
(a file given on the command line, e.g. `git show d861946:kernels/decode_attention.py`) against
the current one, on the same paged KV pool, per layer of the Llama-3.1-8B shape (32 query heads,
8 KV heads, head dim 128, bf16, 16-token blocks). Each side is timed as the engine runs it: a CUDA
graph of one step's 32 layers (the current kernel makes its work plan once a step), replayed;
the time per layer is the replay over 32. Writes decode-skew.json, .csv and .png.

python decode_skew.py BEFORE.py OUT_DIR
python decode_skew.py --plot OUT_DIR/decode-skew.json   (the CSV and PNG again from a saved JSON)"""

import importlib.util
import json
import os
import sys

import torch

from pdtune import kernels as k
from pdtune.perf.environment import environment
from pdtune.perf.timing import measure_ceilings, time_ms

# (name, sequence lengths): uniform batches as bench-kernels times them, then serving mixes.
CASES = [
    ("1 x 1k", [1024]),
    ("1 x 16k", [16384]),
    ("64 x 1k", [1024] * 64),
    ("16 x 16k", [16384] * 16),
    ("256 x 1k", [1024] * 256),
    ("20: 2 x 16k + 7.9k + 17 x 300", [16384, 16384, 7920] + [300] * 17),
    ("64: 16k + 63 x 1k", [16384] + [1024] * 63),
    ("128: 16k + 127 x 512", [16384] + [512] * 127),
    ("32: 4 x 8k + 28 x 2k", [8192] * 4 + [2048] * 28),
]
BLOCK, HEADS, KV_HEADS, DIM = 16, 32, 8, 128
MAX_LEN = 20000  # the block-table width the engine gives graphs (max_model_len 20000)


def load_before(path: str):
    spec = importlib.util.spec_from_file_location("pdtune.kernels.decode_attention_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.paged_decode_attention


LAYERS = 32


def graph_layer_ms(step, dev: torch.device, stream: torch.cuda.Stream | None = None, iters: int = 50) -> float:
    """One step's layers as a CUDA graph captured on `stream` (a graph keeps its stream's SMs), replayed."""
    stream = stream or torch.cuda.Stream(dev)
    stream.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(stream):
        step()  # compiles outside the capture
    stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        step()
    return time_ms(graph.replay, dev, iters=iters) / LAYERS


def paged_batch(lens: list[int], num_blocks: int, dev: torch.device, dtype: torch.dtype, block: int = BLOCK):
    """Block tables (disjoint random blocks of a pool of `num_blocks`), lengths and queries of one decode batch."""
    perm = torch.randperm(num_blocks, device=dev).to(torch.int32)
    table = torch.zeros(len(lens), -(-MAX_LEN // block), dtype=torch.int32, device=dev)
    start = 0
    for row, n in zip(table, lens):
        blocks = -(-n // block)
        row[:blocks] = perm[start:start + blocks]
        start += blocks
    seq_lens = torch.tensor(lens, dtype=torch.int32, device=dev)
    return table, seq_lens, torch.randn(len(lens), HEADS, DIM, device=dev, dtype=dtype)


def main(before_path: str, out_dir: str) -> None:
    dev, dtype = torch.device("cuda"), torch.bfloat16
    before = load_before(before_path)
    copy_bytes_per_s = measure_ceilings(dev, dtype).copy_bytes_per_s
    need = max(sum(-(-n // BLOCK) for n in lens) for _, lens in CASES)
    k_cache = torch.randn(need, BLOCK, KV_HEADS, DIM, device=dev, dtype=dtype)
    v_cache = torch.randn_like(k_cache)
    kv_bytes_per_token = 2 * KV_HEADS * DIM * dtype.itemsize
    rows = []
    for name, lens in CASES:
        table, seq_lens, q = paged_batch(lens, need, dev, dtype)
        scale = DIM ** -0.5
        ref = k.paged_decode_attention_ref(q, k_cache, v_cache, table, seq_lens, scale).float()
        err_before = (before(q, k_cache, v_cache, table, seq_lens, scale).float() - ref).abs().max().item()
        err_now = (k.paged_decode_attention(q, k_cache, v_cache, table, seq_lens, scale).float() - ref).abs().max().item()
        def step_before():
            for _ in range(LAYERS):
                before(q, k_cache, v_cache, table, seq_lens, scale)

        def step_now():
            plan = k.plan_decode_work(seq_lens, KV_HEADS)
            for _ in range(LAYERS):
                k.paged_decode_attention(q, k_cache, v_cache, table, seq_lens, scale, plan)

        before_ms, now_ms = graph_layer_ms(step_before, dev), graph_layer_ms(step_now, dev)
        floor_ms = sum(lens) * kv_bytes_per_token / copy_bytes_per_s * 1e3
        rows.append(dict(case=name, batch=len(lens), kv_tokens=sum(lens), before_us=before_ms * 1e3,
                         now_us=now_ms * 1e3, speedup=before_ms / now_ms, kv_floor_us=floor_ms * 1e3,
                         max_abs_err_before=err_before, max_abs_err_now=err_now))
        r = rows[-1]
        print(f"{name:34s} before {r['before_us']:8.1f} us  now {r['now_us']:8.1f} us  x{r['speedup']:5.2f}"
              f"  floor {r['kv_floor_us']:7.1f} us  err {err_before:.1e}/{err_now:.1e}", flush=True)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "decode-skew.json")
    with open(path, "w") as f:
        json.dump(dict(environment=environment(), per_layer=rows, max_len=MAX_LEN, copy_bytes_per_s=copy_bytes_per_s,
                       shape=dict(heads=HEADS, kv_heads=KV_HEADS, head_dim=DIM, block=BLOCK, dtype=str(dtype))), f, indent=1)
    plot(path)


def plot(json_path: str) -> None:
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = pd.DataFrame(json.load(open(json_path))["per_layer"])
    base = os.path.splitext(json_path)[0]
    rows.to_csv(base + ".csv", index=False)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], rows["before_us"], height=0.4, label="before (one program per sequence)")
    ax.barh([i - 0.2 for i in y], rows["now_us"], height=0.4, label="work plan")
    ax.scatter(rows["kv_floor_us"], list(y), marker="|", s=200, color="black", label="KV bytes / copy rate", zorder=3)
    ax.set_yticks(list(y), rows["case"], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="decode attention per layer (us, CUDA graph)", title="Decode attention, Llama-3.1-8B shape, bf16, H200")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(base + ".png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    if sys.argv[1] == "--plot":
        plot(sys.argv[2])
    else:
        main(sys.argv[1], sys.argv[2])
