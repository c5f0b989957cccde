"""PNG plots of saved results (matplotlib, headless)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_kernel_bench(result, out_dir: str) -> list[str]:
    """Decode step time vs batch per context with its roofline; prefill throughput vs tokens."""
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for context in sorted({r["context"] for r in result.decode}):
        rows = [r for r in result.decode if r["context"] == context]
        batches = [r["batch"] for r in rows]
        line, = ax.plot(batches, [r["graph_ms"] or r["eager_ms"] for r in rows], "o-", label=f"pdtune, context {context}")
        ax.plot(batches, [r["roofline_ms"] for r in rows], "--", color=line.get_color(), label=f"roofline, context {context}")
        hf = [(r["batch"], r["transformers_ms"]) for r in rows if r.get("transformers_ms")]
        if hf:
            ax.plot(*zip(*hf), "x", color=line.get_color(), markersize=9, label=f"transformers, context {context}")
    ax.set(xscale="log", yscale="log", xlabel="decode batch size", ylabel="step time (ms)",
           title=f"Decode step, {result.model} ({result.dtype})")
    ax.legend(fontsize=7)
    paths.append(os.path.join(out_dir, "decode-step.png"))
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    tokens = [r["tokens"] for r in result.prefill]
    ax.plot(tokens, [r["pdtune_tok_s"] for r in result.prefill], "o-", label="pdtune")
    ax.plot(tokens, [r["roofline_tok_s"] for r in result.prefill], "--", label="roofline (FLOPs / measured matmul peak)")
    hf = [(r["tokens"], r["transformers_tok_s"]) for r in result.prefill if r.get("transformers_tok_s")]
    if hf:
        ax.plot(*zip(*hf), "x-", label="transformers (sdpa)")
    ax.set(xscale="log", xlabel="prefill tokens (one sequence)", ylabel="tokens / s",
           title=f"Prefill throughput, {result.model} ({result.dtype})")
    ax.legend(fontsize=8)
    paths.append(os.path.join(out_dir, "prefill-throughput.png"))
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths
