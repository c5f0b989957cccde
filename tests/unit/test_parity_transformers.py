"""pdtune vs transformers on tiny random checkpoints: same greedy tokens, same logprobs.

Every supported architecture is saved with transformers' own classes (float32, random weights
with non-trivial norms and biases), loaded by pdtune from the folder, and both sides decode the
same prompts greedily. Prompt lengths cross the 16-token KV block boundaries, and pdtune runs
them as one batch (mixed prefill/decode steps), while transformers runs each prompt alone with
no padding.
"""

from __future__ import annotations

import os

import pytest
import torch

from pdtune import LLM, SamplingParams

PROMPT_LENGTHS = (1, 5, 17, 33, 40)
MAX_NEW_TOKENS = 12
LOGPROB_ATOL = 1e-4


def make_prompts(lengths, vocab: int = 300, seed: int = 1234) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=gen).tolist() for n in lengths]


@torch.no_grad()
def hf_greedy(model, prompt: list[int], max_new_tokens: int) -> tuple[list[int], list[float]]:
    """transformers' greedy generate on one unpadded prompt: (tokens, logprob of each token)."""
    # Generation options go in as keyword arguments: a GenerationConfig's None eos_token_id would be
    # filled back in from the model's generation_config.json, and HF would stop at the EOS token.
    ids = torch.tensor([prompt])
    out = model.generate(
        ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new_tokens,
        min_new_tokens=0, eos_token_id=None, pad_token_id=0, return_dict_in_generate=True, output_logits=True,
    )
    tokens = out.sequences[0, len(prompt):].tolist()
    assert len(tokens) == max_new_tokens == len(out.logits)
    logprobs = [torch.log_softmax(step[0].float(), dim=-1)[t].item() for step, t in zip(out.logits, tokens)]
    assert all(step[0].argmax().item() == t for step, t in zip(out.logits, tokens))
    return tokens, logprobs


_HF_CACHE: dict[tuple[str, int], dict[tuple[int, ...], tuple[list[int], list[float]]]] = {}


def hf_reference(tiny, prompts, max_new_tokens: int):
    """Per-prompt HF results, computed once per model (modes and backends reuse them)."""
    key = (tiny.folder, max_new_tokens)
    if key not in _HF_CACHE:
        _HF_CACHE[key] = {}
    cache = _HF_CACHE[key]
    results = []
    for p in prompts:
        if tuple(p) not in cache:
            cache[tuple(p)] = hf_greedy(tiny.hf, p, max_new_tokens)
        results.append(cache[tuple(p)])
    return results


def pdtune_greedy(llm: LLM, prompts, max_new_tokens: int):
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, ignore_eos=True, logprobs=1)
    return llm.generate(prompts, params)


def assert_parity(outputs, reference, prompts) -> None:
    for i, (out, (hf_tokens, hf_logprobs), prompt) in enumerate(zip(outputs, reference, prompts, strict=True)):
        where = f"prompt {i} (length {len(prompt)})"
        assert out.prompt_token_ids == prompt, where
        assert out.token_ids == hf_tokens, f"{where}: pdtune {out.token_ids} != transformers {hf_tokens}"
        assert out.finish_reason == "length", where
        assert out.logprobs is not None and len(out.logprobs) == len(hf_tokens), where
        for j, (lp, token, hf_lp) in enumerate(zip(out.logprobs, hf_tokens, hf_logprobs)):
            assert lp.token_id == token, f"{where}, token {j}"
            assert abs(lp.logprob - hf_lp) <= LOGPROB_ATOL, (
                f"{where}, token {j}: pdtune logprob {lp.logprob:.6f} vs transformers {hf_lp:.6f}")
            # Greedy: the top-1 alternative is the chosen token itself, with the same logprob.
            assert len(lp.top) == 1 and lp.top[0][0] == token, f"{where}, token {j}: top {lp.top}"
            assert abs(lp.top[0][1] - lp.logprob) <= 1e-6, f"{where}, token {j}"


def make_llm(folder: str, **overrides) -> LLM:
    options = dict(dtype="float32", attention_backend="torch", num_kv_blocks=64)
    options.update(overrides)
    return LLM(model=folder, **options)


def _cases():
    for arch in ("llama", "mistral", "qwen2", "qwen3"):
        yield pytest.param(arch, "chunked", 2048, id=f"{arch}-chunked")
    yield pytest.param("llama", "sequential", 2048, id="llama-sequential")
    yield pytest.param("llama", "chunked", 16, id="llama-chunked16")
    yield pytest.param("qwen3", "sequential", 2048, id="qwen3-sequential")
    yield pytest.param("qwen2", "chunked", 16, id="qwen2-chunked16")


@pytest.mark.parametrize("arch, mode, max_batched", list(_cases()))
def test_greedy_parity(tiny_hf_model, arch: str, mode: str, max_batched: int) -> None:
    tiny = tiny_hf_model(arch)
    prompts = make_prompts(PROMPT_LENGTHS)
    reference = hf_reference(tiny, prompts, MAX_NEW_TOKENS)
    llm = make_llm(tiny.folder, mode=mode, max_num_batched_tokens=max_batched)
    assert llm.engine.loaded.arch.architecture == type(tiny.hf).__name__
    outputs = pdtune_greedy(llm, prompts, MAX_NEW_TOKENS)
    if max_batched < max(PROMPT_LENGTHS):  # the budget really did split prefills across steps
        assert llm.engine.num_steps > MAX_NEW_TOKENS + 2
    assert_parity(outputs, reference, prompts)


def test_prompt_order_does_not_matter(tiny_hf_model) -> None:
    """The same prompts submitted in reverse give each prompt the same tokens."""
    tiny = tiny_hf_model("qwen2")
    prompts = make_prompts(PROMPT_LENGTHS)[::-1]
    reference = hf_reference(tiny, prompts, MAX_NEW_TOKENS)
    outputs = pdtune_greedy(make_llm(tiny.folder, mode="chunked", max_num_batched_tokens=24), prompts,
                            MAX_NEW_TOKENS)
    assert_parity(outputs, reference, prompts)


def test_triton_backend_parity(tiny_hf_model) -> None:
    """The Triton kernels (run by the interpreter on CPU) give transformers' tokens too."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton on CPU needs TRITON_INTERPRET=1")
    tiny = tiny_hf_model("qwen3")
    prompts = make_prompts((5, 18))
    reference = hf_reference(tiny, prompts, 4)
    llm = make_llm(tiny.folder, attention_backend="triton", device=device)
    assert llm.engine.loaded.model.layers[0].self_attn.ops.backend == "triton"
    outputs = pdtune_greedy(llm, prompts, 4)
    assert_parity(outputs, reference, prompts)
