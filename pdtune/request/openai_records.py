"""OpenAI Batch output lines: chat.completion / text_completion bodies, logprobs, error records."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pdtune.request.openai_batch import BatchRequest

MIN_LOGPROB = -9999.0  # -inf is not valid JSON; vLLM clamps to the same value.


@dataclass
class TokenLogprob:
    """One generated token, its log-probability and the top alternatives at its position."""

    token: str
    logprob: float
    top: list[tuple[str, float]]



def _clamp(logprob: float) -> float:
    return max(float(logprob), MIN_LOGPROB)


def _chat_logprobs(tokens: list[TokenLogprob], k: int) -> dict:
    def entry(token: str, logprob: float) -> dict:
        return {"token": token, "logprob": _clamp(logprob), "bytes": list(token.encode("utf-8"))}

    content = [{**entry(t.token, t.logprob), "top_logprobs": [entry(s, lp) for s, lp in t.top[:k]]} for t in tokens]
    return {"content": content, "refusal": None}


def _completion_logprobs(tokens: list[TokenLogprob], k: int) -> dict:
    """text_offset counts characters from the start of the generated text (no echo)."""
    offsets, pos = [], 0
    for t in tokens:
        offsets.append(pos)
        pos += len(t.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [_clamp(t.logprob) for t in tokens],
        "top_logprobs": [{s: _clamp(lp) for s, lp in t.top[:k]} for t in tokens],
        "text_offset": offsets,
    }


def success_record(
    req: BatchRequest,
    *,
    served_model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    logprobs: list[TokenLogprob] | None,
) -> dict:
    """A 200 output line whose body is a chat.completion or text_completion object."""
    k = req.params.logprobs
    build = _chat_logprobs if req.is_chat else _completion_logprobs
    lp = None if logprobs is None or k is None else build(logprobs, k)
    head = {"created": int(time.time()), "model": req.model or served_model}
    if req.is_chat:
        message = {"role": "assistant", "content": text, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": lp, "finish_reason": finish_reason}
        body = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", **head, "choices": [choice]}
    else:
        choice = {"index": 0, "text": text, "logprobs": lp, "finish_reason": finish_reason}
        body = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", **head, "choices": [choice]}
    total = prompt_tokens + completion_tokens
    body["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total}
    response = {"status_code": 200, "request_id": uuid.uuid4().hex, "body": body}
    return {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": req.custom_id, "response": response, "error": None}


def error_record(custom_id: str | None, code: str, message: str, line_number: int | None = None) -> dict:
    """A failed output line; without a custom_id the input line number is the only key."""
    error: dict[str, Any] = {"code": code, "message": message}
    if custom_id is None and line_number is not None:
        error["line"] = line_number
    return {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": custom_id, "response": None, "error": error}
