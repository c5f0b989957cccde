"""The bench harness's own time per step, on a fake batched engine whose step sleeps like a GPU
step (9.5 ms, about a ShareGPT-like chunked step on the H200): ShareGPT-like, 600 requests at 92
req/s, up to 256 running, the live progress line drawn to a file as on the device. What it
measures is the harness's Python (arrivals, request admission, records, progress), which is what
`harness_overhead` reports in every run.
Usage: python harness_fake_engine.py OUT.json [REPEATS]"""
import json
import statistics
import sys
import time
from types import SimpleNamespace

from rich.console import Console

from pdtune.bench.serve import serve_open_loop
from pdtune.perf.environment import environment
from pdtune.report.bench_report import LiveBenchProgress
from pdtune.request.output import RequestOutput
from pdtune.request.sequence import Sequence, Status
from pdtune.slo import SLO
from pdtune.workloads import arrivals, generators

VOCAB = 128_256
STEP_S = 0.0095


class BatchEngine:
    """Every running request gets a token a step; admission checks token ids as the engine does."""

    def __init__(self):
        self.config = SimpleNamespace(mode="fake")
        self.prefix_cache_hit_rate = 0.0
        self.num_steps = 0
        self.waiting: list[Sequence] = []
        self.running: list[Sequence] = []

    def add_request(self, prompt, params, request_id, arrival_time):
        seq = Sequence(list(prompt), params, arrival_time, request_id)
        ids = seq.prompt_token_ids
        if ids and (min(ids) < 0 or max(ids) >= VOCAB):
            raise ValueError("token id out of range")
        self.waiting.append(seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def step(self) -> list[RequestOutput]:
        end = time.perf_counter() + STEP_S
        take = max(0, 256 - len(self.running))
        self.running += self.waiting[:take]
        self.waiting = self.waiting[take:]
        now = time.perf_counter()
        done = []
        for seq in self.running:
            seq.token_ids.append(7)
            seq.token_times.append(now)
            if seq.num_output_tokens >= seq.params.max_tokens:
                seq.status, seq.finish_reason = Status.FINISHED, "length"
                done.append(seq)
        self.running = [s for s in self.running if s.status != Status.FINISHED]
        self.num_steps += 1
        while (left := end - time.perf_counter()) > 0:
            time.sleep(left)
        return [RequestOutput.from_sequence(s) for s in done]

    def abort_waiting(self) -> list[RequestOutput]:
        return []


def run_once(console: Console) -> dict:
    workload = generators.sharegpt_like(600, seed=0, vocab_size=VOCAB, max_prompt_len=16384)
    workload = arrivals.apply_arrivals(workload, rate=92.0)
    requests = sorted(workload.requests, key=lambda r: r.arrival_s)
    result = serve_open_loop(BatchEngine(), requests, 92.0, LiveBenchProgress(console, "fake"),
                             stop_below=(SLO(2.0, 0.03), 0.9))
    return {"steps": result.steps, "engine_s": result.engine_s, "harness_s": result.harness_s,
            "harness_us_per_step": result.harness_s / result.steps * 1e6, "harness_overhead": result.harness_overhead}


def main(out: str, repeats: int = 5) -> None:
    with open(out + ".console", "w") as f:
        runs = [run_once(Console(file=f)) for _ in range(repeats)]
    per_step = statistics.median(r["harness_us_per_step"] for r in runs)
    overhead = statistics.median(r["harness_overhead"] for r in runs)
    print(f"harness {per_step:.0f} us a step (median of {repeats}), {overhead:.2%} of a {STEP_S * 1e3} ms step")
    with open(out, "w") as f:
        json.dump({"environment": environment(" ".join(sys.argv)), "step_s": STEP_S, "runs": runs,
                   "median_us_per_step": per_step, "median_overhead": overhead}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
