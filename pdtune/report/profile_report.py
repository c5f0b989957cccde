"""Rich display of a `pdtune profile` model: each partition's coefficients, residuals, contention."""

from __future__ import annotations

from rich.table import Table

# column -> (fit, term, scale of the printed unit)
_COLUMNS = {"a ms": ("decode", "const", 1), "b ms/1k tok": ("decode", "context_tokens", 1e3),
            "c ms/seq": ("decode", "batch", 1), "c0 ms": ("layer", "const", 1),
            "c1 ms/1k tok": ("layer", "tokens", 1e3), "c2 ms/M tok^2": ("layer", "square", 1e6),
            "c3 ms/M tok^2": ("layer", "cross", 1e6)}


def _fmt(value: float | None, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale:.4g}"


def profile_table(report: dict) -> Table:
    table = Table(title=f"{report['model']}, {report['dtype']}, {report['total_sms']} SMs, tensor parallel "
                        f"{report['tensor_parallel_size']}: decode ms = a + b * context tokens + c * batch (x "
                        "contention beside prefill); prefill ms per layer = c0 + c1 * tokens + c2 * tokens^2 + c3 * "
                        "tokens x reused")
    for col in ("P/D SMs", "asked", *_COLUMNS, "rms ms", "contention"):
        table.add_column(col, justify="right")
    for part in report["partitions"]:
        fits = {"decode": part["decode_fit"], "layer": part["layer_fit"]}
        coef = [_fmt(fits[phase]["coef_ms"][term] if fits[phase] else None, scale)
                for phase, term, scale in _COLUMNS.values()]
        rms = "/".join(_fmt(f["rms_residual_ms"]) for f in fits.values() if f)
        table.add_row(part["name"], "/".join(map(str, part["requested"])), *coef, rms, _fmt(part["contention_factor"]))
    return table
