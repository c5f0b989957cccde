"""`python -m pdtune.cli`, the same as the `pdtune` command."""

from pdtune.cli.app import app

app()
