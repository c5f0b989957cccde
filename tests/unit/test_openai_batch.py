"""OpenAI Batch parsing, validation and output records."""

import json
from pathlib import Path

import pytest

from pdtune.errors import InputFileError
from pdtune.request.openai_batch import (
    DEFAULT_MAX_TOKENS,
    BatchLineError,
    BatchRequest,
    parse_line,
    read_batch_file,
)
from pdtune.request.openai_records import TokenLogprob, error_record, success_record

CHAT = "/v1/chat/completions"
COMPL = "/v1/completions"
EXAMPLES = Path(__file__).resolve().parents[2] / "workloads" / "examples" / "questions.jsonl"


def chat_line(custom_id="a", **body) -> str:
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body})


def compl_line(custom_id="c", **body) -> str:
    body.setdefault("prompt", "Once upon a time")
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": COMPL, "body": body})


def err(line: str, n: int = 7) -> BatchLineError:
    out = parse_line(line, n)
    assert isinstance(out, BatchLineError), out
    return out


def ok(line: str, n: int = 1) -> BatchRequest:
    out = parse_line(line, n)
    assert isinstance(out, BatchRequest), out
    return out


def test_chat_defaults_and_model_echo():
    req = ok(chat_line(model="gpt-4o-mini"), 3)
    assert (req.line_number, req.custom_id, req.url, req.model) == (3, "a", CHAT, "gpt-4o-mini")
    assert req.is_chat and req.prompt is None
    assert req.messages == [{"role": "user", "content": "hi"}]
    p = req.params
    assert (p.max_tokens, p.temperature, p.top_p, p.top_k, p.logprobs) == (DEFAULT_MAX_TOKENS, 1.0, 1.0, 0, None)


def test_chat_fields_map_to_sampling_params():
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
    ]
    body = dict(messages=messages, max_completion_tokens=9, max_tokens=99, temperature=0, top_p=0.5, top_k=-1,
                min_p=0.1, seed=3, stop="END", ignore_eos=True, logprobs=True, top_logprobs=4,
                stop_token_ids=[2], frequency_penalty=0.0, response_format={"type": "text"}, user="u1")
    req = ok(chat_line(**body))
    assert req.messages == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "one\ntwo"}]
    p = req.params
    assert (p.max_tokens, p.temperature, p.top_p, p.top_k, p.min_p, p.seed) == (9, 0, 0.5, 0, 0.1, 3)
    assert (p.stop, p.stop_token_ids, p.ignore_eos, p.logprobs) == (("END",), (2,), True, 4)
    assert ok(chat_line(logprobs=True)).params.logprobs == 0
    assert ok(chat_line(logprobs=False)).params.logprobs is None
    assert ok(chat_line(temperature=None, n=1, stop=["a", "b"])).params.stop == ("a", "b")


def test_completions_prompt_and_logprobs():
    req = ok(compl_line(logprobs=3, max_tokens=5))
    assert (req.url, req.prompt, req.messages, req.model) == (COMPL, "Once upon a time", None, None)
    assert (req.params.logprobs, req.params.max_tokens) == (3, 5)
    assert ok(compl_line(prompt=[1, 2, 3])).prompt == [1, 2, 3]


@pytest.mark.parametrize(
    "line, code, needle",
    [
        ("{not json", "invalid_json", "not valid JSON"),
        ("[1, 2]", "invalid_json", "JSON object"),
        (json.dumps({"custom_id": "a", "url": CHAT, "body": {}}), "missing_field", "'method' is missing"),
        (json.dumps({"custom_id": "a", "method": "GET", "url": CHAT, "body": {}}), "invalid_parameter", "'GET'"),
        (json.dumps({"custom_id": "a", "method": "POST", "body": {}}), "missing_field", "'url' is missing"),
        (json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}}), "invalid_url",
         "'/v1/embeddings'"),
        (json.dumps({"custom_id": "a", "method": "POST", "url": CHAT}), "missing_field", "'body' is missing"),
        (json.dumps({"custom_id": "a", "method": "POST", "url": CHAT, "body": "x"}), "invalid_parameter",
         "'body' must be an object"),
        (chat_line(messages=None), "missing_field", "'messages' is missing"),
        (chat_line(messages="hi"), "invalid_parameter", "'messages' must be a non-empty list, got 'hi'"),
        (chat_line(messages=[]), "invalid_parameter", "'messages' must be a non-empty list"),
        (chat_line(messages=[{"role": "robot", "content": "x"}]), "invalid_parameter", "'messages[0].role'"),
        (chat_line(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
         "invalid_parameter", "'messages[0].content'"),
        (chat_line(max_tokens=-1), "invalid_parameter", "'max_tokens' must be a positive integer, got -1"),
        (chat_line(max_completion_tokens=0), "invalid_parameter", "'max_completion_tokens' must be a positive"),
        (chat_line(max_tokens=2.5), "invalid_parameter", "'max_tokens'"),
        (chat_line(temperature="hot"), "invalid_parameter", "line 7: 'temperature' must be a number, got 'hot'"),
        (chat_line(top_p=1.5), "invalid_parameter", "top_p must be in (0, 1], got 1.5"),
        (chat_line(temperature=-1), "invalid_parameter", "temperature must be in [0, 100]"),
        (chat_line(n=2), "invalid_parameter", "'n' must be 1"),
        (chat_line(stop=["a", "b", "c", "d", "e"]), "invalid_parameter", "'stop'"),
        (chat_line(stop=5), "invalid_parameter", "'stop'"),
        (chat_line(seed="x"), "invalid_parameter", "'seed' must be an integer"),
        (chat_line(ignore_eos="yes"), "invalid_parameter", "'ignore_eos'"),
        (chat_line(logprobs=5), "invalid_parameter", "'logprobs' must be true or false"),
        (chat_line(top_logprobs=3), "invalid_parameter", "'logprobs' must be true when 'top_logprobs'"),
        (chat_line(logprobs=True, top_logprobs=21), "invalid_parameter", "'top_logprobs'"),
        (chat_line(stop_token_ids="2"), "invalid_parameter", "'stop_token_ids'"),
        (chat_line(model=5), "invalid_parameter", "'model' must be a string"),
        (compl_line(prompt=None), "missing_field", "'prompt' is missing"),
        (compl_line(prompt=["a", "b"]), "invalid_parameter", "one prompt per line"),
        (compl_line(prompt=[[1, 2]]), "invalid_parameter", "'prompt'"),
        (compl_line(prompt=""), "invalid_parameter", "'prompt'"),
        (compl_line(logprobs=6), "invalid_parameter", "'logprobs' must be an integer in [0, 5]"),
        (compl_line(logprobs=True), "invalid_parameter", "'logprobs'"),
        (compl_line(echo=True), "invalid_parameter", "'echo'"),
    ],
)
def test_bad_lines_become_errors(line, code, needle):
    e = err(line)
    assert e.code == code, e
    assert needle in e.message, e.message
    assert e.message.startswith("line 7: ")
    assert e.line_number == 7


@pytest.mark.parametrize("cid", [None, 5, "", ["a"]])
def test_unreadable_custom_id_is_null_with_line_number(cid):
    obj = {"method": "POST", "url": CHAT, "body": {"messages": [{"role": "user", "content": "x"}]}}
    if cid is not None:
        obj["custom_id"] = cid
    e = err(json.dumps(obj), 12)
    assert e.custom_id is None and "line 12" in e.message and "'custom_id'" in e.message
    rec = e.record()
    assert rec["custom_id"] is None and rec["response"] is None
    assert rec["error"] == {"code": e.code, "message": e.message, "line": 12}


def test_error_after_custom_id_keeps_it():
    assert err(chat_line("q9", top_p=1.5)).custom_id == "q9"


def test_read_batch_file_mixed(tmp_path):
    lines = [
        chat_line("a"),
        "",
        "   ",
        "{broken",
        compl_line("b"),
        chat_line("c", temperature="hot"),
        json.dumps({"method": "POST"}),
        compl_line("d", prompt="line\u2028separator inside a string"),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reqs, errs = read_batch_file(path)
    assert [(r.custom_id, r.line_number) for r in reqs] == [("a", 1), ("b", 5), ("d", 8)]
    assert [(e.custom_id, e.line_number, e.code) for e in errs] == [
        (None, 4, "invalid_json"), ("c", 6, "invalid_parameter"), (None, 7, "missing_field")]


def test_read_batch_file_crlf_bom_and_bad_utf8(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + chat_line("a").encode() + b"\r\n\xff\xfe\r\n" + chat_line("b").encode())
    reqs, errs = read_batch_file(path)
    assert [r.custom_id for r in reqs] == ["a", "b"]
    assert [(e.line_number, e.code) for e in errs] == [(2, "invalid_json")]


def test_duplicate_custom_ids_rejected_up_front(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([chat_line("x"), chat_line("y"), chat_line("x", top_p=9)]) + "\n")
    with pytest.raises(InputFileError, match=r"duplicate custom_id 'x' on lines 1 and 3"):
        read_batch_file(path)


def test_missing_input_file(tmp_path):
    with pytest.raises(InputFileError, match="input file not found: .*nope.jsonl"):
        read_batch_file(tmp_path / "nope.jsonl")
    with pytest.raises(InputFileError, match="cannot read input file"):
        read_batch_file(tmp_path)


def test_example_workload_parses():
    reqs, errs = read_batch_file(EXAMPLES)
    assert len(reqs) == 12 and errs == []
    assert [r.custom_id for r in reqs] == [f"q{i:02d}" for i in range(1, 13)]


def check_envelope(rec: dict, custom_id: str) -> dict:
    assert list(rec) == ["id", "custom_id", "response", "error"]
    assert rec["id"].startswith("batch_req_") and rec["custom_id"] == custom_id and rec["error"] is None
    resp = rec["response"]
    assert list(resp) == ["status_code", "request_id", "body"]
    assert resp["status_code"] == 200 and isinstance(resp["request_id"], str) and resp["request_id"]
    assert rec == json.loads(json.dumps(rec))  # plain JSON all the way down
    return resp["body"]


TOKENS = [TokenLogprob("Hé", -0.25, [("Hé", -0.25), ("Hi", -1.5), ("Yo", -3.0)]),
          TokenLogprob("!", float("-inf"), [("!", -0.1), (".", -2.0), ("?", -4.0)])]


def test_chat_success_record():
    req = ok(chat_line("a", model="gpt-4o-mini"))
    rec = success_record(req, served_model="smollm2-135m", text="Paris.", finish_reason="stop",
                         prompt_tokens=11, completion_tokens=3, logprobs=None)
    body = check_envelope(rec, "a")
    assert list(body) == ["id", "object", "created", "model", "choices", "usage"]
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert isinstance(body["created"], int) and body["model"] == "gpt-4o-mini"
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Paris.", "refusal": None},
                                "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}


def test_chat_success_record_with_logprobs():
    req = ok(chat_line("a", logprobs=True, top_logprobs=2))
    rec = success_record(req, served_model="smol", text="Hé!", finish_reason="length",
                         prompt_tokens=4, completion_tokens=2, logprobs=TOKENS)
    choice = check_envelope(rec, "a")["choices"][0]
    assert rec["response"]["body"]["model"] == "smol" and choice["finish_reason"] == "length"
    lp = choice["logprobs"]
    assert list(lp) == ["content", "refusal"] and lp["refusal"] is None
    first, second = lp["content"]
    assert first == {"token": "Hé", "logprob": -0.25, "bytes": [72, 195, 169], "top_logprobs": [
        {"token": "Hé", "logprob": -0.25, "bytes": [72, 195, 169]}, {"token": "Hi", "logprob": -1.5, "bytes": [72, 105]}]}
    assert second["logprob"] == -9999.0 and len(second["top_logprobs"]) == 2
    zero = success_record(ok(chat_line("a", logprobs=True)), served_model="m", text="Hé!", finish_reason="stop",
                          prompt_tokens=1, completion_tokens=2, logprobs=TOKENS)
    assert [t["top_logprobs"] for t in zero["response"]["body"]["choices"][0]["logprobs"]["content"]] == [[], []]


def test_completion_success_record():
    rec = success_record(ok(compl_line("c")), served_model="smol", text=" there was", finish_reason="stop",
                         prompt_tokens=5, completion_tokens=3, logprobs=None)
    body = check_envelope(rec, "c")
    assert list(body) == ["id", "object", "created", "model", "choices", "usage"]
    assert body["id"].startswith("cmpl-") and body["object"] == "text_completion" and body["model"] == "smol"
    assert body["choices"] == [{"index": 0, "text": " there was", "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_completion_success_record_with_logprobs():
    rec = success_record(ok(compl_line("c", logprobs=1)), served_model="smol", text="Hé!", finish_reason="length",
                         prompt_tokens=5, completion_tokens=2, logprobs=TOKENS)
    lp = check_envelope(rec, "c")["choices"][0]["logprobs"]
    assert lp == {"tokens": ["Hé", "!"], "token_logprobs": [-0.25, -9999.0],
                  "top_logprobs": [{"Hé": -0.25}, {"!": -0.1}], "text_offset": [0, 2]}


def test_logprobs_not_requested_stay_null():
    rec = success_record(ok(chat_line("a")), served_model="m", text="x", finish_reason="stop",
                         prompt_tokens=1, completion_tokens=1, logprobs=TOKENS)
    assert rec["response"]["body"]["choices"][0]["logprobs"] is None


def test_error_record_shape():
    rec = error_record("q3", "prompt_too_long", "line 3: prompt has 9000 tokens, the model takes 8192", 3)
    assert list(rec) == ["id", "custom_id", "response", "error"]
    assert rec["id"].startswith("batch_req_") and rec["custom_id"] == "q3" and rec["response"] is None
    assert rec["error"] == {"code": "prompt_too_long", "message": "line 3: prompt has 9000 tokens, the model takes 8192"}
    assert error_record(None, "invalid_json", "line 4: bad", 4)["error"]["line"] == 4
