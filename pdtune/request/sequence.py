"""The one object that holds a request's state from arrival to finish."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from itertools import count

import numpy as np

from pdtune.request.sampling import SamplingParams

_ids = count()


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass
class TokenLogprobs:
    """The sampled token's log-probability and the most likely alternatives, from the raw logits."""

    token_id: int
    logprob: float
    top: list[tuple[int, float]]


class BlockTable:
    """A sequence's KV block ids as a growable int32 array: a step's padded table of the whole
    batch is then one copy per row (a list of lists took 5.6 ms a step to become a tensor at batch
    96 with 16k-token contexts on the 2-core dev machine), and a prefill chunk's slots one vectorised lookup."""

    __slots__ = ("_ids", "_n")

    def __init__(self, ids=()):
        ids = list(ids)
        self._ids = np.zeros(max(16, len(ids)), dtype=np.int32)
        self._ids[:len(ids)] = ids
        self._n = len(ids)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.array[index].tolist()
        return int(self.array[index])

    def __iter__(self):
        return iter(self.array.tolist())

    def __reversed__(self):
        return reversed(self.array.tolist())

    def __repr__(self) -> str:
        return f"BlockTable({self.array.tolist()})"

    @property
    def array(self) -> np.ndarray:
        """The ids in use (a view: valid until the next append)."""
        return self._ids[:self._n]

    def append(self, block_id: int) -> None:
        if self._n == len(self._ids):
            self._ids = np.concatenate([self._ids, np.zeros_like(self._ids)])
        self._ids[self._n] = block_id
        self._n += 1


@dataclass
class Sequence:
    prompt_token_ids: list[int]
    params: SamplingParams
    arrival_time: float = field(default_factory=time.perf_counter)
    request_id: str = field(default_factory=lambda: str(next(_ids)))
    token_ids: list[int] = field(init=False)
    status: Status = Status.WAITING
    num_computed_tokens: int = 0  # tokens whose KV is in the cache
    num_cached_tokens: int = 0  # of the prompt, found in the prefix cache at the last admission
    block_table: BlockTable = field(default_factory=BlockTable)
    finish_reason: str | None = None
    output_text: str = ""
    logprobs: list[TokenLogprobs] = field(default_factory=list)
    token_times: list[float] = field(default_factory=list)  # perf_counter time of each output token
    num_preemptions: int = 0
    generator: object | None = None  # torch.Generator of a seeded request, made by the sampler
    # Tokens sampled by a step still running on the GPU (overlapped scheduling): they count in the
    # length, so the next step is planned before their values reach the host.
    num_pending: int = 0

    def __post_init__(self) -> None:
        self.token_ids = list(self.prompt_token_ids)

    def __len__(self) -> int:
        return len(self.token_ids) + self.num_pending

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens:]

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def num_uncomputed_tokens(self) -> int:
        return len(self) - self.num_computed_tokens

    def awaits_last_token(self, max_model_len: int) -> bool:
        """Its pending token will end it by length: planning another step for it would be waste."""
        return bool(self.num_pending) and (self.num_output_tokens + self.num_pending >= self.params.max_tokens
                                           or len(self) >= max_model_len)

    @property
    def is_finished(self) -> bool:
        return self.status == Status.FINISHED

    def block_tokens(self, index: int, block_size: int) -> list[int]:
        return self.token_ids[index * block_size:(index + 1) * block_size]
