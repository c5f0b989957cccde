"""End-to-end batch throughput: `run-batch` on token-id requests against transformers'
continuous batching (`generate_batch`), both measured in one process on one device."""

from __future__ import annotations

import gc
import json
import os
import random
import time
from dataclasses import asdict, dataclass, replace

import torch

from pdtune.config import EngineConfig
from pdtune.perf.environment import environment


@dataclass(frozen=True)
class E2EConfig:
    engine: EngineConfig
    variants: tuple[dict, ...] = ({},)  # engine overrides, one pdtune run each, all against one transformers run
    requests: int = 1024
    transformers_requests: int = 256  # 0: no transformers run
    prompt_len: int = 512
    output_len: int = 256
    seed: int = 0
    out_dir: str = "results/bench-batch"


def prompts(cfg: E2EConfig, vocab: int) -> list[list[int]]:
    rng = random.Random(cfg.seed)
    return [[rng.randrange(vocab) for _ in range(cfg.prompt_len)] for _ in range(cfg.requests)]


def write_batch_file(path: str, token_prompts: list[list[int]], output_len: int) -> None:
    with open(path, "w") as f:
        for i, ids in enumerate(token_prompts):
            body = {"prompt": ids, "max_tokens": output_len, "temperature": 0, "ignore_eos": True}
            f.write(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions", "body": body}) + "\n")


def run_pdtune(cfg: E2EConfig, input_path: str, output_path: str):
    from pdtune.api import LLM
    from pdtune.batch.runner import run_batch

    holder = {}

    def make_llm():
        holder["llm"] = LLM(**vars(cfg.engine))
        return holder["llm"]

    result = run_batch(input_path, output_path, make_llm)
    engine = holder["llm"].engine
    info = {"kv_capacity_tokens": engine.kv_capacity_tokens, "steps": engine.num_steps,
            "hf_config": engine.loaded.hf_config, "dtype": engine.loaded.dtype}
    del holder["llm"], engine
    return result, info


def run_transformers(hf_config: dict, token_prompts: list[list[int]], output_len: int, dtype, device) -> dict:
    from transformers import GenerationConfig

    from pdtune.perf.hf_baseline import build_hf_model

    model = build_hf_model(hf_config, dtype, device, attn="sdpa")  # generate_batch switches to its paged variant
    gen = GenerationConfig(max_new_tokens=output_len, do_sample=False, pad_token_id=0)
    model.generate_batch(inputs=token_prompts[:2], generation_config=GenerationConfig(
        max_new_tokens=4, do_sample=False, pad_token_id=0), progress_bar=False)  # warm-up, not timed
    start = time.perf_counter()
    outputs = model.generate_batch(inputs=token_prompts, generation_config=gen, progress_bar=False)
    seconds = time.perf_counter() - start
    tokens = sum(len(o.generated_tokens) for o in outputs.values())
    del model
    return {"requests": len(token_prompts), "output_tokens": tokens, "seconds": seconds,
            "output_tokens_per_s": tokens / seconds}


def run_e2e(cfg: E2EConfig) -> dict:
    from pdtune.model.loader import PRESET_DIR, read_json

    os.makedirs(cfg.out_dir, exist_ok=True)
    preset = os.path.join(PRESET_DIR, cfg.engine.model + ".json")
    vocab = read_json(preset)["vocab_size"] if os.path.isfile(preset) else 32000
    token_prompts = prompts(cfg, vocab)
    input_path = os.path.join(cfg.out_dir, "requests.jsonl")
    output_path = os.path.join(cfg.out_dir, "outputs.jsonl")
    write_batch_file(input_path, token_prompts, cfg.output_len)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    runs = []
    for overrides in cfg.variants:
        if os.path.exists(output_path):
            os.remove(output_path)
        engine = replace(cfg.engine, **overrides)
        result, info = run_pdtune(replace(cfg, engine=engine), input_path, output_path)
        runs.append({"overrides": overrides, "engine": vars(engine), **result.summary.to_dict(),
                     "kv_capacity_tokens": info["kv_capacity_tokens"], "steps": info["steps"]})
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    hf = None
    if cfg.transformers_requests:
        hf = run_transformers(info["hf_config"], token_prompts[: cfg.transformers_requests], cfg.output_len,
                              info["dtype"], device)
        for run in runs:
            run["output_tokens_per_s_ratio"] = run["output_tokens_per_s"] / hf["output_tokens_per_s"]
    report = {"environment": environment(), "config": {**asdict(cfg), "engine": vars(cfg.engine)},
              "pdtune": runs, "transformers_generate_batch": hf}
    with open(os.path.join(cfg.out_dir, "bench-batch.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    os.remove(input_path)
    os.remove(output_path)
    return report
