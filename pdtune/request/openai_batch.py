"""OpenAI Batch format: parse and validate input lines (records out: openai_records)."""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn

from pdtune.errors import InputFileError, InvalidRequestError
from pdtune.request.openai_records import error_record
from pdtune.request.sampling import SamplingParams

CHAT_URL = "/v1/chat/completions"
COMPLETIONS_URL = "/v1/completions"
DEFAULT_MAX_TOKENS = 256  # OpenAI's own default is "until the context ends"; a batch needs a bound.
ROLES = ("system", "user", "assistant", "tool", "developer")
MAX_STOP = 4


@dataclass
class BatchRequest:
    """One valid input line: what to generate, and what to echo back in its record."""

    line_number: int
    custom_id: str
    url: str
    model: str | None
    messages: list[dict] | None  # chat: [{"role", "content": str}], text parts already joined
    prompt: str | list[int] | None  # completions: text or token ids
    params: SamplingParams

    @property
    def is_chat(self) -> bool:
        return self.url == CHAT_URL


@dataclass
class BatchLineError:
    """One invalid input line; it becomes an error record, the rest of the file still runs.

    code is one of invalid_json, missing_field, invalid_url, invalid_parameter (and
    prompt_too_long, which only the tokenizer can tell, raised by the caller).
    """

    line_number: int
    custom_id: str | None
    code: str
    message: str

    def record(self) -> dict:
        return error_record(self.custom_id, self.code, self.message, self.line_number)


class _Bad(Exception):
    """A line's validation failure: args are (code, message)."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(key: str, expected: str, value: Any) -> NoReturn:
    raise _Bad("invalid_parameter", f"'{key}' must be {expected}, got {_show(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_ints(value: Any) -> bool:
    return isinstance(value, list) and all(map(_is_int, value))


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _get(body: dict, key: str, expected: str, ok: Callable[[Any], bool], default: Any = None) -> Any:
    """body[key], or default when absent or null (as OpenAI treats null)."""
    value = body.get(key)
    if value is None:
        return default
    if not ok(value):
        _fail(key, expected, value)
    return value


def _required(obj: dict, key: str) -> Any:
    if obj.get(key) is None:
        raise _Bad("missing_field", f"'{key}' is missing")
    return obj[key]


def _messages(body: dict) -> list[dict]:
    """Chat messages reduced to {role, content: str}; only text content is servable."""
    messages = _required(body, "messages")
    if not isinstance(messages, list) or not messages:
        _fail("messages", "a non-empty list", messages)
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            _fail(f"messages[{i}]", "an object", m)
        if m.get("role") not in ROLES:
            _fail(f"messages[{i}].role", f"one of {', '.join(ROLES)}", m.get("role"))
        content = m.get("content")
        if isinstance(content, list) and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
        ):
            content = "\n".join(p["text"] for p in content)
        if not isinstance(content, str):
            _fail(f"messages[{i}].content", "a string or a list of text parts", m.get("content"))
        out.append({"role": m["role"], "content": content})
    return out


def _prompt(body: dict) -> str | list[int]:
    """One prompt per line (n=1 semantics): a string or a list of token ids, never a batch."""
    prompt = _required(body, "prompt")
    if isinstance(prompt, str) and prompt or _is_ints(prompt) and prompt and min(prompt) >= 0:
        return prompt
    _fail("prompt", "a non-empty string or list of token ids (one prompt per line)", prompt)


def _params(body: dict, url: str) -> SamplingParams:
    """Translate OpenAI body fields (plus vLLM-style extensions) into SamplingParams."""
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _get(body, key, "a positive integer", lambda v: _is_int(v) and v > 0, DEFAULT_MAX_TOKENS)
    _get(body, "n", "1 (one completion per line)", lambda v: v == 1 and _is_int(v))
    _get(body, "echo", "false (echoing the prompt is not supported)", lambda v: v is False)
    stop = _get(body, "stop", f"a string or a list of up to {MAX_STOP} strings", _is_stop, [])
    stop_ids = _get(body, "stop_token_ids", "a list of integers", _is_ints, [])
    top_k = _get(body, "top_k", "an integer", _is_int, 0)
    if url == CHAT_URL:  # logprobs: bool; top_logprobs: how many alternatives
        want = _get(body, "logprobs", "true or false", _is_bool, False)
        top_n = _get(body, "top_logprobs", "an integer in [0, 20]", lambda v: _is_int(v) and 0 <= v <= 20)
        if top_n is not None and not want:
            _fail("logprobs", "true when 'top_logprobs' is given", body.get("logprobs"))
        logprobs = (top_n or 0) if want else None
    else:  # completions: logprobs is itself the count of alternatives
        logprobs = _get(body, "logprobs", "an integer in [0, 5]", lambda v: _is_int(v) and 0 <= v <= 5)
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=_get(body, "temperature", "a number", _is_num, 1.0),
        top_p=_get(body, "top_p", "a number", _is_num, 1.0),
        top_k=0 if top_k == -1 else top_k,  # vLLM spells "disabled" as -1
        min_p=_get(body, "min_p", "a number", _is_num, 0.0),
        seed=_get(body, "seed", "an integer", _is_int),
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
        stop_token_ids=tuple(stop_ids),
        ignore_eos=_get(body, "ignore_eos", "true or false", _is_bool, False),
        logprobs=logprobs,
    )


def _is_stop(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and len(value) <= MAX_STOP and all(isinstance(s, str) for s in value)
    )


def _request(obj: dict, custom_id: str, line_number: int) -> BatchRequest:
    if _required(obj, "method") != "POST":
        _fail("method", '"POST"', obj["method"])
    url = _required(obj, "url")
    if url not in (CHAT_URL, COMPLETIONS_URL):
        raise _Bad("invalid_url", f"'url' must be {CHAT_URL} or {COMPLETIONS_URL}, got {_show(url)}")
    body = _required(obj, "body")
    if not isinstance(body, dict):
        _fail("body", "an object", body)
    chat = url == CHAT_URL
    return BatchRequest(
        line_number=line_number,
        custom_id=custom_id,
        url=url,
        model=_get(body, "model", "a string", lambda v: isinstance(v, str)),
        messages=_messages(body) if chat else None,
        prompt=None if chat else _prompt(body),
        params=_params(body, url),
    )


def parse_line(line: str, line_number: int) -> BatchRequest | BatchLineError:
    """Validate one input line; a bad line becomes a BatchLineError, never an exception."""
    custom_id = None
    try:
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise _Bad("invalid_json", f"not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise _Bad("invalid_json", f"must be a JSON object, got {_show(obj)}")
        _required(obj, "custom_id")
        custom_id = _get(obj, "custom_id", "a non-empty string", lambda v: isinstance(v, str) and v != "")
        return _request(obj, custom_id, line_number)
    except _Bad as e:
        code, message = e.args
        return BatchLineError(line_number, custom_id, code, f"line {line_number}: {message}")
    except InvalidRequestError as e:
        return BatchLineError(line_number, custom_id, "invalid_parameter", f"line {line_number}: {e}")


def read_batch_file(path: str | Path) -> tuple[list[BatchRequest], list[BatchLineError]]:
    """Parse a whole input file; duplicate custom_ids reject it up front (outputs are keyed by them)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"input file not found: {path}") from None
    except OSError as e:
        raise InputFileError(f"cannot read input file {path}: {e.strerror}") from None
    requests: list[BatchRequest] = []
    errors: list[BatchLineError] = []
    first_seen: dict[str, int] = {}
    # bytes.splitlines splits only on \n, \r\n, \r (str.splitlines would also split inside U+2028).
    for n, raw in enumerate(data.removeprefix(codecs.BOM_UTF8).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            parsed = parse_line(raw.decode("utf-8"), n)
        except UnicodeDecodeError:
            parsed = BatchLineError(n, None, "invalid_json", f"line {n}: not valid UTF-8")
        if parsed.custom_id is not None:
            if parsed.custom_id in first_seen:
                first = first_seen[parsed.custom_id]
                raise InputFileError(f"duplicate custom_id {parsed.custom_id!r} on lines {first} and {n} of {path}")
            first_seen[parsed.custom_id] = n
        (requests if isinstance(parsed, BatchRequest) else errors).append(parsed)
    return requests, errors


def encode_request(tokenizer, req: BatchRequest) -> list[int]:
    """Prompt token ids: chat messages through the model's chat template, text, or ids as given."""
    if req.is_chat:
        return tokenizer.apply_chat_template(req.messages)
    return tokenizer.encode(req.prompt) if isinstance(req.prompt, str) else list(req.prompt)
