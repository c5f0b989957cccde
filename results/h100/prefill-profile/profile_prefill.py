"""Where an 8192-token prefill of the 8B shape spends its GPU time (torch profiler, CUDA kernels)."""
import torch
from torch.profiler import ProfilerActivity, profile

from pdtune.config import EngineConfig
from pdtune.engine import Engine
from pdtune.perf import step_bench

e = Engine(EngineConfig(model="llama-3.1-8b", load_format="dummy", max_model_len=16384, max_num_batched_tokens=8192,
                        max_num_seqs=64))
step_bench.fill_kv_randomly(e)
print("prefill 8192 ms", step_bench.prefill_ms(e, 8192))
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    step_bench.prefill_ms(e, 8192, iters=2)
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=90))
q = torch.randn(1, 32, 8192, 128, device="cuda", dtype=torch.bfloat16)
k = torch.randn(1, 8, 8192, 128, device="cuda", dtype=torch.bfloat16)
v = torch.randn_like(k)
for gqa in (True, False):
    kk, vv = (k, v) if gqa else (k.repeat_interleave(4, 1), v.repeat_interleave(4, 1))
    f = lambda: torch.nn.functional.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=gqa)
    for _ in range(3):
        f()
    torch.cuda.synchronize()
    s, t = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(10):
        f()
    t.record()
    torch.cuda.synchronize()
    ms = s.elapsed_time(t) / 10
    print(f"sdpa 8192 causal enable_gqa={gqa}: {ms:.3f} ms/layer, {2 * 2 * 8192 * 8192 * 128 * 32 / 2 / ms / 1e9:.0f} TFLOP/s")
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        f()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=4, max_name_column_width=90))
