"""Resumable output file: torn-line repair, keys of records already written, durability."""

import json

import pytest

from pdtune.batch.output_store import OutputStore
from pdtune.errors import InputFileError
from pdtune.request.openai_records import error_record


def ok_rec(custom_id: str) -> dict:
    return {"id": f"batch_req_{custom_id}", "custom_id": custom_id, "response": {"status_code": 200}, "error": None}


def lines_of(path) -> list[dict]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def test_new_file_in_missing_directory(tmp_path):
    path = tmp_path / "deep" / "er" / "out.jsonl"
    with OutputStore.open(path) as store:
        assert len(store) == 0 and not store.done("a")
        store.append(ok_rec("a"))
        store.append(error_record(None, "invalid_json", "line 4: not valid JSON", 4))
        store.append(error_record("b", "invalid_parameter", "line 5: bad"))
        assert store.done("a") and store.done("b") and store.done_line(4) and not store.done_line(5)
    assert [r["custom_id"] for r in lines_of(path)] == ["a", None, "b"]


def test_reopen_knows_what_is_done(tmp_path):
    path = tmp_path / "out.jsonl"
    with OutputStore.open(path) as store:
        store.append(ok_rec("a"))
        store.append(error_record(None, "invalid_json", "line 9: x", 9))
    with OutputStore.open(path) as store:
        assert store.done("a") and store.done_line(9) and not store.done("b") and len(store) == 2
        store.append(ok_rec("b"))
    assert [r["custom_id"] for r in lines_of(path)] == ["a", None, "b"]


@pytest.mark.parametrize("cut", [1, 10, 25, -2])
def test_torn_last_line_is_cut_off(tmp_path, cut):
    path = tmp_path / "out.jsonl"
    whole = (json.dumps(ok_rec("a")) + "\n").encode()
    torn = json.dumps(ok_rec("b")).encode()[:cut]  # bytes cut mid-record, as a crash leaves them
    path.write_bytes(whole + torn)
    with OutputStore.open(path) as store:
        assert path.read_bytes() == whole
        assert store.done("a") and not store.done("b")
        store.append(ok_rec("b"))
    assert [r["custom_id"] for r in lines_of(path)] == ["a", "b"]


def test_torn_multibyte_and_zero_fill(tmp_path):
    path = tmp_path / "out.jsonl"
    whole = (json.dumps(ok_rec("a")) + "\n").encode()
    path.write_bytes(whole + json.dumps(ok_rec("é"), ensure_ascii=False).encode()[:-3] + b"\x00" * 8)
    with OutputStore.open(path) as store:
        assert path.read_bytes() == whole and not store.done("é")


def test_complete_last_record_without_newline_is_kept(tmp_path):
    """Decision: a complete JSON object that only lacks its newline is a whole record: keep it, add the newline."""
    path = tmp_path / "out.jsonl"
    path.write_bytes((json.dumps(ok_rec("a")) + "\n" + json.dumps(ok_rec("b"))).encode())
    with OutputStore.open(path) as store:
        assert store.done("a") and store.done("b")
        store.append(ok_rec("c"))
    assert [r["custom_id"] for r in lines_of(path)] == ["a", "b", "c"]


def test_blank_lines_and_trailing_whitespace(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes((json.dumps(ok_rec("a")) + "\n\n").encode() + b"  ")
    with OutputStore.open(path) as store:
        assert store.done("a")
        store.append(ok_rec("b"))
    assert [r["custom_id"] for r in lines_of(path)] == ["a", "b"]


def test_bad_line_in_the_middle_is_refused(tmp_path):
    path = tmp_path / "out.jsonl"
    original = (json.dumps(ok_rec("a")) + "\n{garbage\n" + json.dumps(ok_rec("b")) + "\n").encode()
    path.write_bytes(original)
    with pytest.raises(InputFileError, match="line 2 is not a JSON record"):
        OutputStore.open(path)
    assert path.read_bytes() == original  # nothing destroyed


def test_output_path_is_a_directory(tmp_path):
    with pytest.raises(InputFileError, match="output path is a directory"):
        OutputStore.open(tmp_path)


def test_parent_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputFileError, match="cannot open output file"):
        OutputStore.open(tmp_path / "f" / "out.jsonl")


def test_append_fsyncs_each_line(tmp_path, monkeypatch):
    import os

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    with OutputStore.open(tmp_path / "out.jsonl") as store:
        before = len(synced)
        store.append(ok_rec("a"))
        store.append(ok_rec("b"))
        assert len(synced) == before + 2


def test_unicode_stays_on_one_line(tmp_path):
    path = tmp_path / "out.jsonl"
    rec = ok_rec("u")
    rec["response"]["text"] = "a\nb\u2028c é"
    with OutputStore.open(path) as store:
        store.append(rec)
    assert lines_of(path) == [rec]
    with OutputStore.open(path) as store:
        assert store.done("u")
