"""One Llama-family decoder (Llama 2/3, Mistral, Qwen2/2.5, Qwen3) in the engine's fused layout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from pdtune.model.arch import ModelArch
from pdtune.model.attention import AttentionMetadata, PagedAttention
from pdtune.model.ops import Ops
from pdtune.model.projection import Projection

if TYPE_CHECKING:
    from pdtune.executor.tensor_parallel import TPGroup


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float, ops: Ops):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps, self.ops = eps, ops

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        return self.ops.rms_norm(x, self.weight, self.eps, residual)


class Attention(nn.Module):
    def __init__(self, arch: ModelArch, ops: Ops, tp: TPGroup | None):
        super().__init__()
        self.arch, self.ops, self.tp = arch, ops, tp
        self.qkv_proj = Projection(arch.hidden_size, arch.q_size + 2 * arch.kv_size, bias=arch.qkv_bias)
        self.o_proj = Projection(arch.q_size, arch.hidden_size, bias=False)
        if arch.qk_norm:
            self.q_norm = RMSNorm(arch.head_dim, arch.rms_norm_eps, ops)
            self.k_norm = RMSNorm(arch.head_dim, arch.rms_norm_eps, ops)
        self.attn = PagedAttention(arch.num_heads, arch.num_kv_heads, arch.head_dim, ops)

    def rotate_and_store(self, qkv: torch.Tensor, positions: torch.Tensor, cos_sin: torch.Tensor,
                         meta: AttentionMetadata) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of the fused projection's output, q and k normed (where the model does) and
        rotated, k and v written into the pool: everything of attention before it attends."""
        a = self.arch
        q, k, v = qkv.split([a.q_size, a.kv_size, a.kv_size], dim=-1)
        q = q.reshape(-1, a.num_heads, a.head_dim)
        k = k.reshape(-1, a.num_kv_heads, a.head_dim)
        v = v.reshape(-1, a.num_kv_heads, a.head_dim)
        if a.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = self.attn.rotate_and_store(q, k, v, positions, cos_sin, meta)
        return q, k, v

    def output(self, attn: torch.Tensor) -> torch.Tensor:
        out = self.o_proj(attn.reshape(-1, self.arch.q_size))
        return out if self.tp is None else self.tp.all_reduce(out)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cos_sin: torch.Tensor, meta: AttentionMetadata):
        q, k, v = self.rotate_and_store(self.qkv_proj(x), positions, cos_sin, meta)
        return self.output(self.attn.attend(q, k, v, meta))


class MLP(nn.Module):
    def __init__(self, arch: ModelArch, ops: Ops, tp: TPGroup | None):
        super().__init__()
        self.ops, self.tp = ops, tp
        self.gate_up_proj = Projection(arch.hidden_size, 2 * arch.intermediate_size, bias=False)
        self.down_proj = Projection(arch.intermediate_size, arch.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.down_proj(self.ops.silu_and_mul(self.gate_up_proj(x)))
        return out if self.tp is None else self.tp.all_reduce(out)


class DecoderLayer(nn.Module):
    def __init__(self, arch: ModelArch, ops: Ops, tp: TPGroup | None):
        super().__init__()
        self.input_layernorm = RMSNorm(arch.hidden_size, arch.rms_norm_eps, ops)
        self.self_attn = Attention(arch, ops, tp)
        self.post_attention_layernorm = RMSNorm(arch.hidden_size, arch.rms_norm_eps, ops)
        self.mlp = MLP(arch, ops, tp)

    def attention_input(self, hidden: torch.Tensor, residual: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(fused q/k/v projection, residual) of the layer's input: the work before attention."""
        if residual is None:
            hidden, residual = self.input_layernorm(hidden), hidden
        else:
            hidden, residual = self.input_layernorm(hidden, residual)
        return self.self_attn.qkv_proj(hidden), residual

    def after_attention(self, attn: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden, residual) out of the layer, from its attention's output: the work after it."""
        hidden, residual = self.post_attention_layernorm(self.self_attn.output(attn), residual)
        return self.mlp(hidden), residual

    def forward(self, hidden, residual, positions, cos_sin, meta):
        qkv, residual = self.attention_input(hidden, residual)
        q, k, v = self.self_attn.rotate_and_store(qkv, positions, cos_sin, meta)
        return self.after_attention(self.self_attn.attn.attend(q, k, v, meta), residual)


# HF checkpoint name -> (engine parameter, shard index within the fused parameter)
_FUSED = {"q_proj": ("qkv_proj", 0), "k_proj": ("qkv_proj", 1), "v_proj": ("qkv_proj", 2),
          "gate_proj": ("gate_up_proj", 0), "up_proj": ("gate_up_proj", 1)}


class LlamaForCausalLM(nn.Module):
    """The forward pass is split (embed, layers[start:end], logits) so that a step may run
    only a block of layers, as the PD-multiplexed mode does for prefill. Under tensor
    parallelism each rank holds `local_arch`'s shards: its heads, MLP width and vocabulary rows."""

    def __init__(self, arch: ModelArch, ops: Ops, tp: TPGroup | None = None):
        super().__init__()
        self.arch, self.tp = arch, tp
        self.local_arch = local = arch.sharded(tp.size if tp else 1)
        self.embed_tokens = nn.Embedding(local.vocab_size, arch.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(local, ops, tp) for _ in range(arch.num_layers))
        self.norm = RMSNorm(arch.hidden_size, arch.rms_norm_eps, ops)
        self.lm_head = None if arch.tie_word_embeddings else nn.Linear(arch.hidden_size, local.vocab_size, bias=False)
        self.cos_sin: torch.Tensor | None = None  # float32 rotary table, set by the loader

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.tp is None:
            return self.embed_tokens(input_ids)
        rows = self.local_arch.vocab_size
        local = input_ids - self.tp.rank * rows
        outside = (local < 0) | (local >= rows)
        hidden = self.embed_tokens(local.masked_fill(outside, 0)).masked_fill(outside.unsqueeze(-1), 0.0)
        return self.tp.all_reduce(hidden)

    def forward_layers(self, hidden, residual, positions, meta: AttentionMetadata, start: int = 0, end: int | None = None):
        for layer in self.layers[start:end]:
            hidden, residual = layer(hidden, residual, positions, self.cos_sin, meta)
        return hidden, residual

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        hidden, residual = self.forward_layers(self.embed(input_ids), None, positions, meta)
        return self.norm(hidden, residual)[0]

    @property
    def lm_head_weight(self) -> torch.Tensor:
        return self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def projections(self) -> list[Projection]:
        """One layer's linear layers; every layer has the same shapes."""
        return [group[0] for group in self.projection_groups().values()]

    def projection_groups(self) -> dict[str, list[Projection]]:
        """Each of a layer's linear layers, across the layers."""
        return {"qkv": [layer.self_attn.qkv_proj for layer in self.layers],
                "o": [layer.self_attn.o_proj for layer in self.layers],
                "gate_up": [layer.mlp.gate_up_proj for layer in self.layers],
                "down": [layer.mlp.down_proj for layer in self.layers]}

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = F.linear(hidden, self.lm_head_weight).float()
        return logits if self.tp is None else self.tp.all_gather_last(logits)

    @torch.no_grad()
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copies HF-named tensors (this rank's shards of them) into the fused layout; every
        parameter must be filled."""
        a = self.local_arch
        shard_sizes = {"qkv_proj": [a.q_size, a.kv_size, a.kv_size],
                       "gate_up_proj": [a.intermediate_size, a.intermediate_size]}
        params = dict(self.named_parameters())
        pending = {name: set() for name in params}
        for name, tensor in weights:
            name = name.removeprefix("model.")
            if name == "lm_head.weight" and self.lm_head is None:
                continue
            if "rotary_emb" in name:
                continue
            if self.tp is not None:
                tensor = self.tp.shard(name, tensor)
            target, shard = name, None
            for hf_part, (fused, index) in _FUSED.items():
                if f".{hf_part}." in name:
                    target, shard = name.replace(hf_part, fused), index
            if target not in params:
                raise KeyError(f"checkpoint tensor {name!r} has no place in {a.architecture}")
            param = params[target]
            if shard is None:
                param.copy_(tensor)
                pending[target].add(0)
            else:
                sizes = shard_sizes[target.split(".")[-2]]
                offset = sum(sizes[:shard])
                param.narrow(0, offset, sizes[shard]).copy_(tensor)
                pending[target].add(shard)
        missing = [n for n, got in pending.items() if not got or ("qkv" in n and len(got) < 3)
                   or ("gate_up" in n and len(got) < 2)]
        if missing:
            raise KeyError(f"checkpoint lacks tensors for {missing[:4]}{' ...' if len(missing) > 4 else ''}")
