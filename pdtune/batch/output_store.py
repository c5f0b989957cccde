"""Resumable append-only output file: one fsync'd JSON record per line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO

from pdtune.errors import InputFileError


class OutputStore:
    """The records already on disk say what a resumed run must not emit again.

    Each append is one write + fsync, so a crash can only tear the last line. On open, a last
    line that is not a complete JSON object is cut off; a complete one that only lacks its
    newline is kept and the newline added. A bad line anywhere else is not a crash artifact
    and is refused rather than silently dropped.
    """

    def __init__(self, path: Path, file: BinaryIO, ids: set[str], lines: set[int]) -> None:
        self.path = path
        self._file = file
        self._ids = ids
        self._lines = lines

    @classmethod
    def open(cls, path: str | Path) -> OutputStore:
        path = Path(path)
        if path.is_dir():
            raise InputFileError(f"output path is a directory: {path}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            created = not path.exists()
            ids: set[str] = set()
            lines: set[int] = set()
            needs_newline = False if created else _scan(path, ids, lines)
            store = cls(path, path.open("ab"), ids, lines)
            if created:  # make the new directory entry itself durable
                dir_fd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            if needs_newline:
                store._write(b"\n")
        except OSError as e:
            raise InputFileError(f"cannot open output file {path}: {e.strerror or e}") from None
        return store

    def done(self, custom_id: str) -> bool:
        return custom_id in self._ids

    def done_line(self, line_number: int) -> bool:
        """For error records without a custom_id, keyed by their input line number."""
        return line_number in self._lines

    def __len__(self) -> int:
        return len(self._ids) + len(self._lines)

    def append(self, record: dict) -> None:
        self._write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        _remember(record, self._ids, self._lines)

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> OutputStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remember(record: dict, ids: set[str], lines: set[int]) -> None:
    custom_id, error = record.get("custom_id"), record.get("error")
    if isinstance(custom_id, str):
        ids.add(custom_id)
    elif custom_id is None and isinstance(error, dict) and isinstance(error.get("line"), int):
        lines.add(error["line"])


def _scan(path: Path, ids: set[str], lines: set[int]) -> bool:
    """Collect the keys of an existing file and cut a torn last line; True if a newline is owed."""
    good_end, bad_line, needs_newline = 0, None, False
    with path.open("r+b") as f:
        for n, raw in enumerate(f, start=1):
            blank = not raw.strip()
            if bad_line is not None:
                if not blank:
                    raise InputFileError(
                        f"output file {path} line {bad_line} is not a JSON record and is not the last line; "
                        "fix or move the file"
                    )
                continue
            try:
                record = None if blank else json.loads(raw)
            except ValueError:
                record = None
            if blank and raw.endswith(b"\n"):
                good_end += len(raw)
            elif isinstance(record, dict):
                good_end += len(raw)
                needs_newline = not raw.endswith(b"\n")
                _remember(record, ids, lines)
            else:
                bad_line = n
        if good_end < f.tell():
            f.truncate(good_end)
            f.flush()
            os.fsync(f.fileno())
    return needs_newline
