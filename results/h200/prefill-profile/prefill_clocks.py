"""Whether the 8192-token prefill runs at a lower SM clock in pdtune than in transformers.
kernel_profile.py saw the same cuBLAS and cuDNN kernels run slower in pdtune's prefill than in
transformers' (GEMMs 165.8 against 151.2 ms, cuDNN attention 37.5 against 33.8 ms): pdtune runs
them back to back, while transformers leaves 42 ms of small elementwise kernels between them, so a
power cap could hold pdtune's clock lower. Each side runs its prefill for about 4 s while a thread
samples NVML every 2 ms (SM clock, power, clock-event reasons); the same sdpa call is also timed
alone in pdtune's layout (q and k strided views, 8 kv heads with enable_gqa) and in transformers'
with k and v repeated to 32 heads. Session 15 ran it before its transformers half moved into
kernel_profile.py's `transformers_prefill` (the same calls). Usage: python prefill_clocks.py OUT_DIR"""
import json
import os
import statistics
import sys
import threading
import time

import pynvml
import torch
import torch.nn.functional as F

from pdtune.config import EngineConfig
from pdtune.engine import Engine
from pdtune.perf import step_bench
from pdtune.perf.environment import environment
from pdtune.perf.timing import time_ms

from kernel_profile import transformers_prefill  # this folder's script: the script's folder is on sys.path

REASONS = {0x1: "gpu_idle", 0x2: "app_clocks", 0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal",
           0x40: "hw_thermal", 0x80: "hw_power_brake"}


class Sampler(threading.Thread):
    """NVML readings every `period` s until stopped."""

    def __init__(self, handle, period: float = 0.002):
        super().__init__(daemon=True)
        self.handle, self.period, self.samples, self.stop = handle, period, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((pynvml.nvmlDeviceGetClockInfo(self.handle, pynvml.NVML_CLOCK_SM),
                                 pynvml.nvmlDeviceGetPowerUsage(self.handle) / 1e3,
                                 pynvml.nvmlDeviceGetCurrentClocksEventReasons(self.handle)))
            time.sleep(self.period)


def sampled(fn, handle, seconds: float = 4.0) -> dict:
    """Calls `fn` back to back for `seconds` (after 1 s of warm-up) under the sampler."""
    end = time.time() + 1.0
    while time.time() < end:
        fn()
    torch.cuda.synchronize()
    sampler = Sampler(handle)
    sampler.start()
    start, calls = time.time(), 0
    while time.time() - start < seconds:
        fn()
        calls += 1
        if calls % 4 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    wall = time.time() - start
    sampler.stop.set()
    sampler.join()
    clocks, watts, reasons = zip(*sampler.samples)
    counts = {name: sum(1 for r in reasons if r & bit) / len(reasons) for bit, name in REASONS.items()}
    return dict(ms_per_call=wall / calls * 1e3, calls=calls, samples=len(clocks),
                sm_clock_mhz_median=statistics.median(clocks), sm_clock_mhz_min=min(clocks),
                sm_clock_mhz_max=max(clocks), power_w_median=statistics.median(watts), power_w_max=max(watts),
                reason_share={k: round(v, 3) for k, v in counts.items() if v})


@torch.inference_mode()
def sdpa_layouts(tokens: int = 8192, heads: int = 32, kv_heads: int = 8, dim: int = 128) -> dict:
    """One layer's causal attention at `tokens`, in pdtune's and in transformers' layouts."""
    dev, dt = torch.device("cuda"), torch.bfloat16
    qkv = torch.randn(tokens, (heads + 2 * kv_heads) * dim, device=dev, dtype=dt)
    q, k, v = qkv.split([heads * dim, kv_heads * dim, kv_heads * dim], dim=-1)
    q, k, v = (x.view(tokens, -1, dim) for x in (q, k, v))
    pd_q, pd_k, pd_v = q.transpose(0, 1).unsqueeze(0), k.contiguous().transpose(0, 1).unsqueeze(0), \
        v.contiguous().transpose(0, 1).unsqueeze(0)
    rep_k, rep_v = (x.repeat_interleave(heads // kv_heads, dim=1) for x in (pd_k, pd_v))
    cont_q = pd_q.contiguous()
    cases = {
        "pdtune layout, enable_gqa": lambda: F.scaled_dot_product_attention(pd_q, pd_k, pd_v, is_causal=True,
                                                                            enable_gqa=True),
        "k, v repeated to 32 heads": lambda: F.scaled_dot_product_attention(pd_q, rep_k, rep_v, is_causal=True),
        "contiguous [1, heads, n, dim], enable_gqa": lambda: F.scaled_dot_product_attention(
            cont_q, pd_k.contiguous(), pd_v.contiguous(), is_causal=True, enable_gqa=True),
    }
    return {name: time_ms(fn, dev, iters=20, warmup=3) for name, fn in cases.items()}


def sampled_pdtune(handle) -> tuple[dict, dict]:
    """pdtune's prefill under the sampler, and the model's config for transformers."""
    engine = Engine(EngineConfig(model="llama-3.1-8b", load_format="dummy", max_model_len=16384,
                                 max_num_batched_tokens=8192, max_num_seqs=64, gpu_memory_utilization=0.6))
    ids, positions, meta = step_bench.prefill_inputs(engine, 8192)
    model = engine.runner.model

    @torch.inference_mode()
    def ours():
        return model.compute_logits(model(ids, positions, meta)[-1:])

    return sampled(ours, handle), engine.loaded.hf_config


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
    report: dict = {"environment": environment(" ".join(sys.argv)),
                    "power_limit_w": pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1e3,
                    "max_sm_clock_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)}
    report["sdpa_one_layer_ms"] = sdpa_layouts()
    report["pdtune"], hf_cfg = sampled_pdtune(handle)
    report["transformers"] = sampled(transformers_prefill(hf_cfg), handle)
    with open(os.path.join(out, "prefill-clocks.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: v for k, v in report.items() if k != "environment"}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
