"""run-batch: serves an OpenAI Batch file with the engine, appending each result as it finishes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from pdtune.api import LLM
from pdtune.batch.output_store import OutputStore
from pdtune.errors import InvalidRequestError, PromptTooLongError
from pdtune.metrics import RunSummary, summarize
from pdtune.request.openai_batch import BatchRequest, encode_request, read_batch_file
from pdtune.request.openai_records import TokenLogprob, error_record, success_record
from pdtune.request.output import RequestOutput


class BatchProgress(Protocol):
    """What the runner tells whoever displays it (the CLI draws a rich progress bar)."""

    def start(self, total: int, already_done: int) -> None: ...
    def advance(self, completion_tokens: int, failed: bool) -> None: ...
    def warn(self, message: str) -> None: ...
    def model_ready(self) -> None: ...


@dataclass
class BatchResult:
    total_lines: int
    already_done: int  # results found in the output file from an earlier run
    summary: RunSummary


def _token_logprobs(llm: LLM, out: RequestOutput) -> list[TokenLogprob] | None:
    if out.logprobs is None:
        return None
    text = llm.tokenizer.token_text
    return [TokenLogprob(text(t.token_id), t.logprob, [(text(i), lp) for i, lp in t.top]) for t in out.logprobs]


def run_batch(input_path: str | Path, output_path: str | Path, make_llm: Callable[[], LLM],
              progress: BatchProgress | None = None) -> BatchResult:
    """Serves every line of `input_path` whose result is not yet in `output_path`.

    Results are appended and fsync'd one by one, so an interrupted run loses nothing and a
    rerun serves only what is missing. Bad lines become error records; the rest still run.
    """
    requests, line_errors = read_batch_file(input_path)
    total = len(requests) + len(line_errors)
    with OutputStore.open(output_path) as store:
        already = len(store)
        todo = [r for r in requests if not store.done(r.custom_id)]
        failed = 0
        if progress:
            progress.start(total, already)
        for err in line_errors:
            done = store.done(err.custom_id) if err.custom_id is not None else store.done_line(err.line_number)
            if not done:
                store.append(err.record())
                failed += 1
                if progress:
                    progress.advance(0, failed=True)
        outputs: list[RequestOutput] = []
        start = time.perf_counter()
        if todo:
            llm = make_llm()
            start = time.perf_counter()  # throughput and wall time exclude loading the model
            if progress:
                progress.model_ready()
            engine = llm.engine
            served = engine.model_name
            others = sorted({r.model for r in todo if r.model and r.model != served})
            if others and progress:
                progress.warn(f"lines name model {', '.join(others)}; every line is served by {served}")
            by_id: dict[str, BatchRequest] = {}
            for req in todo:
                try:
                    engine.add_request(encode_request(llm.tokenizer, req), req.params, request_id=req.custom_id)
                except InvalidRequestError as exc:
                    code = "prompt_too_long" if isinstance(exc, PromptTooLongError) else "invalid_parameter"
                    store.append(error_record(req.custom_id, code, f"line {req.line_number}: {exc}"))
                    failed += 1
                    if progress:
                        progress.advance(0, failed=True)
                    continue
                by_id[req.custom_id] = req
            while engine.has_unfinished():
                for out in engine.step():
                    req = by_id[out.request_id]
                    store.append(success_record(
                        req, served_model=served, text=out.text, finish_reason=out.finish_reason,
                        prompt_tokens=len(out.prompt_token_ids), completion_tokens=len(out.token_ids),
                        logprobs=_token_logprobs(llm, out),
                    ))
                    outputs.append(out)
                    if progress:
                        progress.advance(len(out.token_ids), failed=False)
            hit_rate, preemptions = engine.prefix_cache_hit_rate, engine.num_preemptions
            llm.close()
        else:
            hit_rate, preemptions = 0.0, 0
        summary = summarize(outputs, failed, time.perf_counter() - start, hit_rate, preemptions)
    return BatchResult(total, already, summary)
