"""Where an eager step's time goes when the GPU outruns the host: the 8B shape's eager steps
(decode 1 x 1k and 64 x 1k, fresh prefill of 512 and 2048 tokens, the executor's own path) timed
three ways: the host's time to issue the step (no sync), the step on an idle GPU (events, as
bench-kernels), and the GPU's kernel time (torch profiler); then what one launch of each kernel
the layers call costs the host (200 launches, no sync, a step-sized operand). bench-kernels saw
eager steps of 13-26 ms where the graph of the same decode took 5-7. Since the piecewise graphs
(session 9, call 6) the executor's path replays graph pieces for steps of a bucket's row count
(64 to 2048 here), so the same script measures them; the one-row decode stays eager.

python eager_host.py OUT_DIR"""

import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from pdtune import LLM
from pdtune.perf import step_bench
from pdtune.perf.environment import environment
from pdtune.perf.timing import time_ms


def host_ms(fn, iters: int = 20) -> float:
    """The host's time to issue `fn` on an idle GPU (synchronised before, not after)."""
    times = []
    for _ in range(iters):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    torch.cuda.synchronize()
    return statistics.median(times)


def kernel_ms(fn, iters: int = 5) -> tuple[float, list]:
    """The GPU's kernel time per call of `fn` and the top host-side ops, from the profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
    events = prof.key_averages()
    device_us = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA")
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    ops = [dict(name=e.key, calls=e.count // iters, self_cpu_us=e.self_cpu_time_total / iters) for e in top]
    return device_us / iters / 1e3, ops


def launch_us(fn, n: int = 200) -> float:
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    host = (time.perf_counter() - t0) * 1e6 / n
    torch.cuda.synchronize()
    return host


def main(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    engine = LLM("llama-3.1-8b", load_format="dummy", max_model_len=4096, max_num_batched_tokens=2048,
                 max_num_seqs=64).engine
    step_bench.fill_kv_randomly(engine)
    runner = engine.runner
    cases = {
        "decode 1 x 1k": step_bench.decode_step_inputs(engine, 1, 1024),
        "decode 64 x 1k": step_bench.decode_step_inputs(engine, 64, 1024),
        "prefill 512": step_bench.prefill_step_inputs(engine, 512),
        "prefill 2048": step_bench.prefill_step_inputs(engine, 2048),
    }
    steps = []
    for name, inputs in cases.items():
        inputs.num_logits = len(inputs.logits_rows)

        @torch.inference_mode()
        def step(inputs=inputs):
            return runner._eager_logits(inputs)

        for _ in range(3):
            step()
        row = dict(case=name, host_issue_ms=host_ms(step), idle_gpu_event_ms=time_ms(step, runner.device))
        row["gpu_kernel_ms"], row["top_host_ops"] = kernel_ms(step)
        steps.append(row)
        print(f"{name}: host issues it in {row['host_issue_ms']:.2f} ms, events {row['idle_gpu_event_ms']:.2f} ms, "
              f"kernels {row['gpu_kernel_ms']:.2f} ms", flush=True)
        for op in row["top_host_ops"][:8]:
            print(f"    {op['name'][:60]:60s} x{op['calls']:<4d} {op['self_cpu_us']:9.1f} us", flush=True)

    layer = runner.model.layers[0]
    attn, ops = layer.self_attn, layer.self_attn.ops
    dev, dtype = runner.device, runner.kv_cache.dtype
    a = runner.model.local_arch
    launches = []
    with torch.inference_mode():
        for rows in (64, 512):
            x = torch.randn(rows, a.hidden_size, device=dev, dtype=dtype)
            res = torch.randn_like(x)
            gu = torch.randn(rows, 2 * a.intermediate_size, device=dev, dtype=dtype)
            q = torch.randn(rows, a.num_heads, a.head_dim, device=dev, dtype=dtype)
            k = torch.randn(rows, a.num_kv_heads, a.head_dim, device=dev, dtype=dtype)
            pos = torch.arange(rows, device=dev)
            slots = torch.arange(rows, device=dev)
            kc, vc = attn.attn.k_cache, attn.attn.v_cache
            w = attn.qkv_proj.weight
            cands = {
                "rms_norm": lambda: ops.rms_norm(x, layer.input_layernorm.weight, 1e-5, None),
                "rms_norm+residual": lambda: ops.rms_norm(x, layer.input_layernorm.weight, 1e-5, res),
                "rotary_write_kv": lambda: ops.rotary_write_kv(q, k, k, pos, runner.model.cos_sin, kc, vc, slots),
                "silu_and_mul": lambda: ops.silu_and_mul(gu),
                "F.linear qkv": lambda: F.linear(x, w),
                "torch add (reference launch)": lambda: x.add(res),
            }
            for name, fn in cands.items():
                launches.append(dict(rows=rows, op=name, host_us=launch_us(fn)))
                print(f"launch {name} at {rows} rows: {launches[-1]['host_us']:.1f} us", flush=True)
    with open(os.path.join(out_dir, "eager-host.json"), "w") as f:
        json.dump(dict(environment=environment(), steps=steps, launches=launches), f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
