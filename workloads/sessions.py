"""Multi-turn sessions whose every turn extends the previous turn's prompt, as a prefix cache sees them."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from pdtune.workloads.lengths import LengthDist
from pdtune.workloads.request import WorkloadRequest
from pdtune.workloads.tokens import random_tokens, token_list


@dataclass(frozen=True)
class SessionShape:
    """How sessions are built; all lengths in tokens.

    Turn 0's prompt is a shared prefix plus first_user tokens. Turn k's prompt is turn k-1's
    prompt, then turn k-1's answer (max_tokens pseudo tokens standing in for what the model
    said), then new_user tokens (the next user message or tool result). A prefix cache thus
    hits on the whole previous prompt; the answer part hits only if the engine cached exactly
    those tokens, which it will not have generated.
    """

    prefix_lens: tuple[int, ...]  # system prompts / tool definitions shared across sessions; one picked uniformly
    first_user: LengthDist
    new_user: LengthDist
    output: LengthDist
    mean_turns: float  # turns per session, geometric on 1, 2, ...
    turn_gap: float  # mean number of other requests between two turns of one session


def fit_first_user(
    input_mean: float, sigma: float, prefix_lens: tuple[int, ...], new_user: LengthDist, output: LengthDist,
    mean_turns: float,
) -> LengthDist:
    """The lognormal first-turn length (given its sigma) that makes the mean prompt over all turns input_mean.

    With geometric turns a request's turn index averages mean_turns - 1, and turn k's prompt
    averages prefix + first_user + k * (output + new_user). Ignores the max-length clamps.
    """
    growth = (mean_turns - 1) * (new_user.expected_mean + output.expected_mean)
    first = input_mean - float(np.mean(prefix_lens)) - growth
    if first < 1:
        raise ValueError(f"input mean {input_mean} is below what prefixes and turn growth alone give")
    return LengthDist.lognormal(first, sigma)


def build_sessions(
    shape: SessionShape, num_requests: int, seed: int, vocab_size: int, max_prompt_len: int | None,
    max_output_len: int | None,
) -> list[WorkloadRequest]:
    """num_requests turns, sessions interleaved, each session's turns in order (arrivals left at 0).

    A session ends early when its next prompt would pass max_prompt_len (a turn 0 prompt is cut
    to it instead). Order: sessions start uniformly over num_requests request slots and turns
    follow at exponential gaps of turn_gap slots; requests are sorted by that virtual time.
    """
    rng = np.random.default_rng(seed)
    prefixes = [token_list(random_tokens(rng, n, vocab_size)) for n in shape.prefix_lens]
    cap = max_prompt_len or sys.maxsize
    turns: list[tuple[float, WorkloadRequest]] = []
    session = 0
    while len(turns) < num_requests:
        n = min(int(rng.geometric(1 / shape.mean_turns)), num_requests - len(turns))
        outputs = np.minimum(shape.output.sample(rng, n), max_output_len or sys.maxsize)
        users = np.concatenate([shape.first_user.sample(rng, 1), shape.new_user.sample(rng, n - 1)])
        when = rng.uniform(0, num_requests) + np.cumsum(np.concatenate([[0.0], rng.exponential(shape.turn_gap, n - 1)]))
        prompt = prefixes[rng.integers(len(prefixes))] if prefixes else []
        for turn in range(n):
            answer = random_tokens(rng, outputs[turn - 1], vocab_size) if turn else np.empty(0, np.int64)
            new = token_list(np.concatenate([answer, random_tokens(rng, users[turn], vocab_size)]))
            if turn and len(prompt) + len(new) > cap:
                break
            prompt = prompt + new
            del prompt[cap:]
            request = WorkloadRequest("", 0.0, prompt, int(outputs[turn]), str(session), turn)
            turns.append((float(when[turn]), request))
        session += 1
    turns.sort(key=lambda t: t[0])
    for i, (_, request) in enumerate(turns):
        request.request_id = str(i)
    return [request for _, request in turns]
