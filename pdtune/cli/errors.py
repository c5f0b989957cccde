"""Turns errors a user can cause into one line and a non-zero exit; PDTUNE_DEBUG=1 shows the traceback."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from pdtune.errors import PdtuneError


@contextmanager
def user_errors(console: Console) -> Iterator[None]:
    try:
        yield
    except PdtuneError as exc:
        if os.environ.get("PDTUNE_DEBUG"):
            raise
        console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
