"""Rich display of a `pdtune profile` model: each partition's coefficients, residuals, contention."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

# phase -> (title, {column: (term, scale of the printed unit)}); one table each, so both fit 80 columns
_TABLES = {
    "decode": ("decode step ms = a + b * context tokens + c * batch, x contention beside prefill",
               {"a ms": ("const", 1), "b ms/1k tok": ("context_tokens", 1e3), "c ms/seq": ("batch", 1)}),
    "layer": ("prefill ms per layer = c0 + c1 * tokens + c2 * tokens^2 + c3 * tokens x reused",
              {"c0 ms": ("const", 1), "c1 ms/1k tok": ("tokens", 1e3), "c2 ms/M tok^2": ("square", 1e6),
               "c3 ms/M tok^2": ("cross", 1e6)}),
}


def _fmt(value: float | None, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale:.3g}"


def profile_table(report: dict) -> Group:
    tables = []
    for phase, (title, columns) in _TABLES.items():
        table = Table(title=f"{report['model']}, {report['dtype']}, {report['total_sms']} SMs, TP "
                            f"{report['tensor_parallel_size']}: {title}")
        for col in ("P/D SMs", "asked", *columns, "rms ms", *(["contention"] if phase == "decode" else [])):
            table.add_column(col, justify="right")
        for part in report["partitions"]:
            fit = part[f"{phase}_fit"]
            if not fit:
                continue
            coef = [_fmt(fit["coef_ms"][term], scale) for term, scale in columns.values()]
            extra = [_fmt(part["contention_factor"])] if phase == "decode" else []
            table.add_row(part["name"], "/".join(map(str, part["requested"])), *coef,
                          _fmt(fit["rms_residual_ms"]), *extra)
        tables.append(table)
    return Group(*tables)
