"""search: Optuna over static pdmux plans (split, gang, prefill batch) on one running engine,
maximizing SLO attainment at a fixed rate; writes a config file the other commands take."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from typing import Protocol

import optuna

from pdtune.bench.runner import BenchConfig, build_workload, serve_workload, timed, warm_up
from pdtune.bench.serve import Progress, RunResult
from pdtune.bench.summary import backlog_exceeds_ttft, summarize_run
from pdtune.config import EngineConfig
from pdtune.engine import make_engine
from pdtune.errors import PdtuneError
from pdtune.executor.partitions import check_green_contexts
from pdtune.executor.virtual_gpu import simulated_gpu
from pdtune.model.loader import load_tokenizer
from pdtune.perf.environment import environment
from pdtune.search.study import join_study
from pdtune.slo import SLO

PREFILL_TOKEN_CHOICES = (2048, 4096, 8192, 16384)


@dataclass(frozen=True)
class SearchConfig:
    engine: EngineConfig  # mode pdmux; its policy, split and gang are what the search sets
    slo: SLO
    rate: float  # open-loop requests/s
    workload: str = "sharegpt"  # as bench takes it: generator, shipped trace or file
    num_requests: int = 200
    attainment_target: float = 0.9  # a trial stops early once its attainment cannot reach this
    trials: int = 20  # trials this process runs (a shared study may hold more)
    seed: int = 0  # workload and arrivals; the sampler's seed is offset by the trials already made
    storage: str | None = None  # Optuna RDB URL, or a path ending in .log for a journal file; None: in memory
    study_name: str | None = None  # default: from workload, rate and SLO
    out: str | None = None  # JSON config file; the CSV of trials goes beside it
    prefill_token_choices: tuple[int, ...] = PREFILL_TOKEN_CHOICES  # capped at the context length
    max_prompt_len: int | None = None
    max_output_len: int | None = None
    warmup_requests: int = 8
    simulate: bool = False  # trials on the virtual GPU of engine.perf_model (`bench --simulate`), on a CPU

    def __post_init__(self) -> None:
        checks = [
            (self.engine.mode == "pdmux", f"pdtune search tunes the pdmux mode; this config runs {self.engine.mode!r} "
                                             '(set "mode": "pdmux")'),
            (self.rate > 0, "the rate must be positive"),
            (self.num_requests > 0 and self.trials > 0, "the requests and trials must be positive"),
            (0 < self.attainment_target <= 1, "the attainment target must be in (0, 1]"),
            (bool(self.prefill_token_choices) and min(self.prefill_token_choices) > 0,
             "prefill token choices must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise PdtuneError(message)

    @property
    def name(self) -> str:
        return self.study_name or f"{os.path.basename(self.workload)}-rate{self.rate:g}-{self.slo}"

    def bench_config(self) -> BenchConfig:
        """The bench settings that build and time the workload exactly as `pdtune bench` would."""
        return BenchConfig(self.engine, ("pdmux:static",), self.workload, self.num_requests, self.rate, seed=self.seed,
                           max_prompt_len=self.max_prompt_len, max_output_len=self.max_output_len, slo=self.slo,
                           attainment_target=self.attainment_target, warmup_requests=self.warmup_requests,
                           simulate=self.simulate)


@dataclass
class TrialRow:
    """One trial of the study, from whichever machine ran it."""

    number: int
    state: str
    split: list[int] | None
    gang: int | None
    prefill_tokens: int | None
    attainment: float | None
    score: float | None = None  # the objective: attainment, ties broken by headroom
    headroom: float | None = None
    ttft_p90_ms: float | None = None
    tpot_p90_ms: float | None = None
    output_tokens_per_s: float | None = None
    stopped_early: bool | None = None
    fell_behind: bool | None = None  # a first token over one TTFT after the last arrival: ranks below every trial that kept up
    machine: str | None = None


class SearchProgress(Protocol):
    def run(self, label: str) -> Progress | None: ...  # request progress of one serve run

    def trial(self, row: TrialRow, best: TrialRow | None) -> None: ...


@dataclass
class _Space:
    """What a trial may pick; identical in every process of a study (part of its identity)."""

    splits: list[list[int]]
    max_gang: int
    prefill_tokens: list[int]

    def suggest(self, trial: optuna.Trial) -> tuple[tuple[int, int], int, int]:
        split = trial.suggest_categorical("split", [f"{p}/{d}" for p, d in self.splits])
        gang = trial.suggest_int("gang", 1, self.max_gang, log=True)
        tokens = trial.suggest_categorical("prefill_tokens", self.prefill_tokens)
        return _split(split), gang, tokens


def _split(text: str) -> tuple[int, int]:
    p, d = text.split("/")
    return int(p), int(d)


def _ms(value: float) -> float | None:
    return None if math.isnan(value) else value * 1e3


def headroom(summary: dict, slo: SLO) -> float:
    """How far the p90s stay under the SLO: 1 - the larger of p90 TTFT / TTFT SLO and p90 TPOT /
    TPOT SLO, in [-1, 1] (-1 when nothing finished)."""
    ratios = [summary["ttft_s"]["p90"] / slo.ttft_s, summary["tpot_s"]["p90"] / slo.tpot_s]
    ratios = [r for r in ratios if not math.isnan(r)]
    return max(-1.0, min(1.0, 1.0 - max(ratios))) if ratios else -1.0


def score(attainment: float, room: float, num_requests: int, fell_behind: bool = False) -> float:
    """Attainment first; among plans that serve as many requests within the SLO (at low rates
    many reach 100%), the one with the most headroom. The headroom's weight (0.4 / requests
    per unit) stays below one request's worth of attainment, so it never outranks one. A plan
    that fell behind its arrivals (its attainment leaning on the prompts it served after the
    last one, see `fell_behind`) ranks below every plan that kept up."""
    return attainment + 0.4 / num_requests * room - (2.0 if fell_behind else 0.0)


def _figures(summary: dict, slo: SLO) -> dict:
    room = headroom(summary, slo)
    behind = backlog_exceeds_ttft(summary["backlog_s"], slo)
    return {"attainment": summary["slo_attainment"],
            "score": score(summary["slo_attainment"], room, max(1, summary["requests"]), behind),
            "headroom": room, "ttft_p90_ms": _ms(summary["ttft_s"]["p90"]), "tpot_p90_ms": _ms(summary["tpot_s"]["p90"]),
            "output_tokens_per_s": summary["output_tokens_per_s"], "stopped_early": summary["stopped_early"],
            "fell_behind": behind}


def _row(t: optuna.trial.FrozenTrial) -> TrialRow:
    attrs = {k: t.user_attrs.get(k) for k in ("attainment", "headroom", "ttft_p90_ms", "tpot_p90_ms",
                                              "output_tokens_per_s", "stopped_early", "fell_behind", "machine")}
    split = t.params.get("split")
    return TrialRow(t.number, t.state.name, list(_split(split)) if split else None, t.params.get("gang"),
                    t.params.get("prefill_tokens"), score=t.value, **attrs)


def _engine_section(config: EngineConfig) -> dict:
    """The settings that differ from the defaults, plus those a reader looks for; JSON-ready."""
    keep = {"mode", "pdmux_policy", "pdmux_static_split", "pdmux_gang", "pdmux_prefill_tokens", "slo_ttft_ms",
            "slo_tpot_ms", "tensor_parallel_size", "data_parallel_size", "model"}
    default = EngineConfig()
    out = {k: v for k, v in dataclasses.asdict(config).items()
           if (k in keep or v != getattr(default, k)) and k != "trace_path"}
    return json.loads(json.dumps(out))  # tuples -> lists, as the file holds them


def _identity(cfg: SearchConfig, model: str, space: _Space, device: str) -> dict:
    e = cfg.engine
    return {"model": model, "device": device, "dtype": e.dtype, "tensor_parallel_size": e.tensor_parallel_size,
            "data_parallel_size": e.data_parallel_size,
            "workload": os.path.basename(cfg.workload), "num_requests": cfg.num_requests, "rate": cfg.rate,
            "slo": str(cfg.slo), "attainment_target": cfg.attainment_target, "seed": cfg.seed,
            "splits": space.splits, "max_gang": space.max_gang, "prefill_tokens": space.prefill_tokens}


def _space(cfg: SearchConfig, num_layers: int, context: int) -> _Space:
    splits = [[p, d] for p, d in cfg.engine.pdmux_splits if p and d]
    tokens = sorted({min(t, context) for t in cfg.prefill_token_choices})
    return _Space(splits, num_layers, tokens)


def _serve(engine, label: str, bench: BenchConfig, workload, progress: SearchProgress | None,
           stop_below: tuple[SLO, float] | None) -> RunResult:
    return serve_workload(engine, label, timed(workload, bench, bench.rate), bench, bench.rate,
                          progress.run(label) if progress else None, stop_below)


def run_search(cfg: SearchConfig, progress: SearchProgress | None = None) -> dict:
    """Joins (or makes) the study, builds one static-pdmux engine and the workload once, runs
    `cfg.trials` trials, then serves the workload once more under the adaptive policy for
    comparison. Returns (and with `cfg.out` writes, with a CSV of trials) the config of the best
    trial under "engine" and the search's record under "search"."""
    if not cfg.simulate:
        check_green_contexts()
    base = dataclasses.replace(cfg.engine, **cfg.slo.engine_targets())
    model, arch, tokenizer = load_tokenizer(base)
    bench = cfg.bench_config()
    workload = build_workload(bench, arch.vocab_size, tokenizer)  # an unknown workload fails before any model loads
    space = _space(cfg, arch.num_layers, base.max_model_len or arch.max_position_embeddings)
    env = environment()
    # trials on another kind of GPU, or simulated ones beside measured ones, would not be comparable
    device = f"simulated {simulated_gpu(base)}" if cfg.simulate else env.get("gpu") or "cpu"
    study = join_study(cfg.storage, cfg.name, _identity(cfg, os.path.basename(model.rstrip("/")), space, device),
                       cfg.seed)
    machine = f"{platform.node()} ({device})"
    first = dict(pdmux_policy="static", pdmux_static_split=tuple(space.splits[0]), pdmux_gang=1)
    engine = make_engine(dataclasses.replace(base, **first), cfg.simulate)
    try:
        warm_up(engine, workload, cfg.warmup_requests)

        def objective(trial: optuna.Trial) -> float:
            split, gang, tokens = space.suggest(trial)
            engine.set_pdmux_plan("static", split, gang, tokens)
            figures = _figures(summarize_run(_serve(engine, f"trial {trial.number}", bench, workload, progress,
                                                    (cfg.slo, cfg.attainment_target)), cfg.slo), cfg.slo)
            for key, value in {**figures, "machine": machine}.items():
                if key != "score":
                    trial.set_user_attr(key, value)
            return figures["score"]

        def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if progress is not None:
                progress.trial(_row(trial), _row(study.best_trial))

        study.optimize(objective, n_trials=cfg.trials, callbacks=[report])
        engine.set_pdmux_plan("adaptive", prefill_tokens=base.pdmux_prefill_tokens)
        adaptive = _figures(summarize_run(_serve(engine, "adaptive", bench, workload, progress, None), cfg.slo), cfg.slo)
    finally:
        engine.close()
    result = _result(cfg, base, study, adaptive, env)
    if cfg.out:
        save_search(result, cfg.out)
    return result


def _result(cfg: SearchConfig, base: EngineConfig, study: optuna.Study, adaptive: dict, env: dict) -> dict:
    best = _row(study.best_trial)
    config = dataclasses.replace(base, pdmux_policy="static", pdmux_static_split=tuple(best.split),
                                 pdmux_gang=best.gang, pdmux_prefill_tokens=best.prefill_tokens)
    return {
        "engine": _engine_section(config),
        "search": {
            "kind": "pdtune-search", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "study": cfg.name, "storage": cfg.storage, "slo": str(cfg.slo), "rate": cfg.rate,
            "workload": cfg.workload, "num_requests": cfg.num_requests, "attainment_target": cfg.attainment_target,
            "simulated": {"perf_model": base.perf_model} if cfg.simulate else None,
            "best": dataclasses.asdict(best), "best_attainment": best.attainment,
            "adaptive": adaptive, "adaptive_attainment": adaptive["attainment"],
            "trials": [dataclasses.asdict(_row(t)) for t in study.trials],
            "environment": env,
        },
    }


def save_search(result: dict, path: str) -> list[str]:
    """The config (JSON) and one CSV row per trial beside it."""
    import pandas as pd

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    csv = os.path.splitext(path)[0] + "-trials.csv"
    pd.DataFrame(result["search"]["trials"]).to_csv(csv, index=False)
    return [path, csv]
