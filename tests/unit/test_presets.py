"""Shape presets load with dummy weights and a real tokenizer where one installs."""

import pytest

from pdtune.model.arch import ModelArch
from pdtune.model.loader import PRESET_DIR, presets, read_json
from pdtune.model.tokenizer import ByteTokenizer, load_preset_tokenizer


def test_the_promised_presets_exist_and_parse():
    assert {"tiny", "llama-3.2-1b", "llama-3.1-8b", "qwen2.5-7b", "qwen3-8b"} <= set(presets())
    for name in presets():
        arch = ModelArch.from_hf_config(read_json(f"{PRESET_DIR}/{name}.json"), name)
        assert arch.num_heads % arch.num_kv_heads == 0


@pytest.mark.parametrize("name,text,ids", [
    ("llama3", "Hello world", [9906, 1917]),
    ("qwen2", "Hello world, 你好", [9707, 1879, 11, 220, 108386]),
])
def test_preset_tokenizers_are_the_real_vocabularies(name, text, ids):
    tok = load_preset_tokenizer(name, ())
    assert tok.encode(text)[-len(ids):] == ids
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}])
    assert "Hi" in tok.hf.decode(chat)
    assert tok.decode(ids) == text


def test_byte_tokenizer_round_trips_text():
    tok = ByteTokenizer()
    assert tok.decode(tok.encode("héllo")) == "héllo"
