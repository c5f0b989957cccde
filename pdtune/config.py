"""Every engine knob in one frozen dataclass; values found at run time live elsewhere."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL = "smollm2-135m-instruct"
MODES = ("sequential", "chunked", "pdmux")
PDMUX_POLICIES = ("adaptive", "static", "sglang")
DISPATCH_ORDERS = ("edf", "fcfs", "fewest-misses")
PREFILL_JUMPS = ("off", "late", "shorter", "spare", "safe")


def prefill_jump_name(value: str | bool) -> str:
    """`pdmux_prefill_jump` as named now; configs written when it was a switch hold True or False."""
    return ("late" if value else "off") if isinstance(value, bool) else value


# SGLang's pdmux table for 132 SMs, as (prefill SMs, decode SMs).
DEFAULT_SPLITS: tuple[tuple[int, int], ...] = ((112, 20), (104, 28), (96, 36), (88, 44), (80, 52), (72, 60))
LOAD_FORMATS = ("auto", "safetensors", "gguf", "dummy")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class EngineConfig:
    model: str = DEFAULT_MODEL
    load_format: str = "auto"
    dtype: str = "auto"
    device: str = "auto"
    mode: str = "chunked"
    attention_backend: str = "auto"
    # Tokens per KV page; None: 64 where decode attention bulk-copies its tiles page by page (the
    # Triton kernels on a Hopper or later GPU), 16 elsewhere (`pdtune.model.ops.resolve_block_size`)
    block_size: int | None = None
    num_kv_blocks: int | None = None  # overrides the sizing below when set
    kv_cache_gb: float = 1.0  # KV pool size on CPU
    gpu_memory_utilization: float = 0.9  # share of GPU memory the engine may take in all
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    max_model_len: int | None = None  # defaults to the model's context length
    enable_prefix_caching: bool = True
    enforce_eager: bool = False  # GPU: run every step eagerly instead of replaying CUDA graphs (decode, piecewise)
    # GPU, 16-bit weights: each decode graph's projections use cuBLAS or cuBLASLt, whichever its
    # capture timed faster on its stream at its batch (False: torch's default library throughout)
    tune_decode_gemms: bool = True
    overlap_scheduling: bool = True  # plan and launch step n+1 before reading step n's tokens (one process)
    # PD-multiplexing (mode "pdmux")
    pdmux_policy: str = "adaptive"
    pdmux_splits: tuple[tuple[int, int], ...] = DEFAULT_SPLITS
    pdmux_static_split: tuple[int, int] | None = None  # policy "static": (prefill SMs, decode SMs)
    pdmux_gang: int | None = None  # policy "static": prefill layers launched beside each decode step
    pdmux_prefill_tokens: int = 16384  # most prompt tokens in one layer-split prefill batch; a longer prompt is cut to it
    slo_ttft_ms: float = 2000.0
    slo_tpot_ms: float = 50.0
    slo_itl_ms: float | None = None  # an SLO's per-token gap bound: pdmux adaptive plans no decode step longer
    dispatch: str = "fewest-misses"  # order in which waiting requests enter prefill: fewest-misses, edf or fcfs
    # pdmux admission: "tpot" admits a waiting request into prefill only while the decode batch it
    # will join is predicted to meet the TPOT SLO beside prefill; "none" admits while KV and seats last
    pdmux_admission: str = "none"
    # pdmux: a waiting request runs its prefill before the rest of the one in flight, from the next
    # layer boundary (the overtaken prefill keeps its hidden state and resumes after), when the
    # overtaken keeps the TTFT slack for it: "late", the head of the queue when it would miss its
    # TTFT behind; "shorter", the shortest waiting prefill when it is at most a quarter of what
    # remains (shortest remaining time first, for TTFT below the SLO); "spare", "shorter" only while
    # every queued prefill keeps `pdmux_spare_slack_share` of its TTFT SLO (as the spare decode
    # target, `pdmux_spare_none_lost` included: under load the long prompts overtaken would fall
    # behind); "safe", "shorter" while no waiting request that can still meet its TTFT would miss
    # it behind the jump; "off"
    pdmux_prefill_jump: str = "off"
    # pdmux: a "shorter", "spare" or "safe" jump takes the next shortest waiting requests with the shortest
    # while they fit its share and slack (one jump for several short prompts: each alone reads every
    # weight); False jumps one request at a time as before session 24, for comparison
    pdmux_jump_batch: bool = True
    # pdmux adaptive: decode steps are planned to take at most this share of the TPOT SLO. Below 1,
    # decode gets SMs beyond the least that just meet the SLO: requests then finish sooner and the
    # decode batch (and its KV reads) stays smaller, which near saturation can be worth more to
    # prefill than the SMs given up
    pdmux_decode_target: float = 1.0
    # pdmux adaptive: the decode target while TTFT slack is to spare: every queued prefill (the
    # batch in flight and the waiting requests, on the slowest mixed prefill partition) keeps at
    # least `pdmux_spare_slack_share` of its TTFT SLO. Below `pdmux_decode_target`, spare TTFT
    # slack buys TPOT at light load and decode falls back to the target as the queue fills; 1
    # (default) leaves it off
    pdmux_spare_decode_target: float = 1.0
    # ... and the share of its TTFT SLO every queued prefill must keep for it to apply
    pdmux_spare_slack_share: float = 0.5
    # ... and, on, only while no waiting request would miss its TTFT even if its prefill went first
    # (the dispatcher defers such a one as lost). The slack above counts only requests that can
    # still meet their TTFT, so under overload it let the spare target and jumps go on and turn the
    # long prompts waiting behind into misses, served last (session 25's simulation); a lost
    # request is the sign of overload that the slack leaves out
    pdmux_spare_none_lost: bool = True
    # pdmux adaptive: "step" plans every step within the TPOT alone; "pace" plans each decode step
    # within what keeps every running request's mean TPOT (the SLO's measure) at the target, so slack
    # banked by fast steps (decode alone, small batches) buys prefill SMs later. Same goodput on the
    # H200 at TPOT 20, 30 and 50 ms, but pace's p90 TPOT follows the host's noise between runs (7.9%
    # apart against 3.1%), so step is the default
    pdmux_decode_budget: str = "step"
    # pdmux adaptive: when every decoding request has banked enough TPOT (the decode budget) to wait
    # for a block of prefill layers on the whole GPU and the decode step after it, and a layer runs
    # faster alone than beside decode, the step runs that block alone: TPOT slack buys TTFT
    pdmux_prefill_alone: bool = False
    # pdmux: prefill blocks of up to 2048 rows replay graph pieces captured on each prefill stream;
    # False launches them eagerly (what they did before, for comparison)
    pdmux_prefill_graphs: bool = True
    # pdmux: in the step a prefill batch's last layers launch, the next batch (the one a jump
    # overtook, else the next from the queue) launches its first layers behind them, so the
    # prefill SMs do not idle to the next step; False leaves them idle as before session 23, for
    # comparison in one command
    pdmux_prefill_behind: bool = True
    trace_path: str | None = None  # JSONL of every pdmux step decision
    perf_model: str | None = None  # JSON from `pdtune profile`: priors of the pdmux planner and the DP dispatcher
    seed: int = 0
    tensor_parallel_size: int = 1  # processes, each with a shard of every layer (gloo on CPUs, NCCL on GPUs)
    data_parallel_size: int = 1  # engine replicas in their own processes, fed by an SLO-aware dispatcher

    def __post_init__(self) -> None:
        from pdtune.errors import PdtuneError

        object.__setattr__(self, "pdmux_prefill_jump", prefill_jump_name(self.pdmux_prefill_jump))

        checks = [
            (self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}"),
            (self.load_format in LOAD_FORMATS, f"load format must be one of {LOAD_FORMATS}, got {self.load_format!r}"),
            (self.dtype in DTYPES, f"dtype must be one of {DTYPES}, got {self.dtype!r}"),
            (self.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, got {self.device!r}"),
            (self.block_size is None or (self.block_size > 0 and self.block_size & (self.block_size - 1) == 0),
             "block size must be a power of two"),
            (self.max_num_seqs > 0 and self.max_num_batched_tokens > 0, "batch limits must be positive"),
            (0.0 < self.gpu_memory_utilization <= 1.0, "gpu memory utilization must be in (0, 1]"),
            (self.num_kv_blocks is None or self.num_kv_blocks > 0, "num_kv_blocks must be positive"),
            (self.pdmux_policy in PDMUX_POLICIES, f"pdmux policy must be one of {PDMUX_POLICIES}, got {self.pdmux_policy!r}"),
            (self.dispatch in DISPATCH_ORDERS, f"dispatch must be one of {DISPATCH_ORDERS}, got {self.dispatch!r}"),
            (self.pdmux_admission in ("none", "tpot"), f"pdmux admission must be none or tpot, got "
                                                       f"{self.pdmux_admission!r}"),
            (self.pdmux_prefill_jump in PREFILL_JUMPS, f"pdmux prefill jump must be one of {PREFILL_JUMPS}, got "
                                                       f"{self.pdmux_prefill_jump!r}"),
            (self.pdmux_policy != "static" or (self.pdmux_static_split and self.pdmux_gang),
             "pdmux policy 'static' needs a split and a gang size (pdtune search writes both)"),
            (self.slo_ttft_ms > 0 and self.slo_tpot_ms > 0 and (self.slo_itl_ms is None or self.slo_itl_ms > 0),
             "SLO targets must be positive"),
            (0.0 < self.pdmux_decode_target <= 1.0, f"pdmux decode target must be in (0, 1], got "
                                                    f"{self.pdmux_decode_target!r}"),
            (0.0 < self.pdmux_spare_decode_target <= 1.0, f"pdmux spare decode target must be in (0, 1], got "
                                                          f"{self.pdmux_spare_decode_target!r}"),
            (0.0 <= self.pdmux_spare_slack_share < 1.0, f"pdmux spare slack share must be in [0, 1), got "
                                                        f"{self.pdmux_spare_slack_share!r}"),
            (self.pdmux_decode_budget in ("pace", "step"), f"pdmux decode budget must be pace or step, got "
                                                           f"{self.pdmux_decode_budget!r}"),
            (self.tensor_parallel_size >= 1, "tensor parallel size must be at least 1"),
            (self.data_parallel_size >= 1, "data parallel size must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise PdtuneError(message)
        if self.perf_model is not None:  # fail before loading the model, naming the file
            from pdtune.perf.perf_model import read_perf_model

            read_perf_model(self.perf_model, model=self.model.rstrip("/"))


def read_engine_settings(config_file: str) -> dict:
    """The engine settings a JSON file holds (as `pdtune search` writes it: at the top level or
    under "engine"), checked against the config's fields; lists made the tuples it holds."""
    import json
    from dataclasses import fields

    from pdtune.errors import InputFileError

    try:
        with open(config_file) as f:
            data = json.load(f)
    except FileNotFoundError as exc:
        raise InputFileError(f"config file not found: {config_file}") from exc
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{config_file}: not valid JSON ({exc})") from exc
    data = data.get("engine", data) if isinstance(data, dict) else None
    if not isinstance(data, dict):
        raise InputFileError(f"{config_file}: expected a JSON object of engine settings")
    known = {f.name for f in fields(EngineConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputFileError(f"{config_file}: unknown settings {unknown}")
    for key in ("pdmux_splits", "pdmux_static_split"):  # JSON lists -> the tuples the config holds
        if isinstance(data.get(key), list):
            data[key] = tuple(tuple(v) if isinstance(v, list) else v for v in data[key])
    return data


def build_engine_config(config_file: str | None = None, **overrides) -> EngineConfig:
    """A config from a JSON file (`read_engine_settings`), with explicit overrides on top;
    overrides that are None are left to the file or the defaults."""
    from pdtune.errors import InputFileError

    values = read_engine_settings(config_file) if config_file is not None else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return EngineConfig(**values)
    except TypeError as exc:
        raise InputFileError(f"bad engine settings: {exc}") from exc
