"""The Python API the CLI wraps: `LLM(model=...).generate(prompts, params)`."""

from __future__ import annotations

from dataclasses import fields
from typing import Iterable, Iterator, Union

from pdtune.config import EngineConfig
from pdtune.engine import make_engine
from pdtune.request.output import RequestOutput
from pdtune.request.sampling import SamplingParams

Prompt = Union[str, list[int], list[dict]]  # text, token ids, or chat messages


class LLM:
    def __init__(self, model: str | None = None, **kwargs):
        names = {f.name for f in fields(EngineConfig)}
        unknown = set(kwargs) - names
        if unknown:
            raise TypeError(f"unknown engine options: {sorted(unknown)}")
        config = EngineConfig(**kwargs) if model is None else EngineConfig(model=model, **kwargs)
        self.engine = make_engine(config)
        self.tokenizer = self.engine.tokenizer

    def close(self) -> None:
        """Stops worker processes (tensor parallelism); the LLM is unusable afterwards."""
        self.engine.close()

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of a text, of chat messages (through the chat template), or as given."""
        if isinstance(prompt, str):
            return self.tokenizer.encode(prompt)
        if prompt and isinstance(prompt[0], dict):
            return self.tokenizer.apply_chat_template(prompt)
        return list(prompt)

    def stream(self, prompts: Iterable[Prompt], params: SamplingParams | list[SamplingParams]) -> Iterator[tuple[int, RequestOutput]]:
        """Yields (index, output) as requests finish, which may be out of order."""
        prompts = list(prompts)
        params_list = params if isinstance(params, list) else [params] * len(prompts)
        index = {}
        for i, (prompt, p) in enumerate(zip(prompts, params_list, strict=True)):
            request_id = f"generate-{i}"
            self.engine.add_request(self.encode(prompt), p, request_id=request_id)
            index[request_id] = i
        while self.engine.has_unfinished():
            for out in self.engine.step():
                yield index[out.request_id], out

    def generate(self, prompts: Iterable[Prompt], params: SamplingParams | list[SamplingParams] | None = None) -> list[RequestOutput]:
        prompts = list(prompts)
        results: list[RequestOutput | None] = [None] * len(prompts)
        for i, out in self.stream(prompts, params or SamplingParams()):
            results[i] = out
        return results  # type: ignore[return-value]
