"""pdtune vs transformers on the real default model, the SmolLM2-135M-Instruct Q4_1 GGUF.

Both sides dequantize the same file to float32; the chat prompt ids, the greedy answers and
their logprobs must agree. The models are loaded once per session (conftest fixtures).
"""

from __future__ import annotations

import pytest
import torch

from pdtune import SamplingParams

pytestmark = pytest.mark.slow

MAX_NEW_TOKENS = 16
LOGPROB_ATOL = 1e-3

QUESTIONS = (
    "What is the capital of France?",
    "Name three primary colors.",
    "Write a haiku about the sea.",
)


def chat(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


@pytest.fixture(scope="module")
def answers(smollm2_llm, smollm2_hf):
    """{question: (prompt ids, pdtune output, hf tokens, hf logprobs)}; pdtune runs all questions as one batch."""
    llm = smollm2_llm
    hf_model, hf_tokenizer = smollm2_hf
    prompts = [llm.encode(chat(q)) for q in QUESTIONS]
    params = SamplingParams(temperature=0.0, max_tokens=MAX_NEW_TOKENS, ignore_eos=True, logprobs=1)
    outputs = llm.generate(prompts, params)
    result = {}
    for question, prompt, out in zip(QUESTIONS, prompts, outputs, strict=True):
        ids = torch.tensor([prompt])
        with torch.no_grad():
            # Keyword arguments, not a GenerationConfig: there a None eos_token_id is filled back in
            # from the model's generation config and transformers would stop at EOS.
            hf_out = hf_model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
                min_new_tokens=0, eos_token_id=None, pad_token_id=hf_tokenizer.pad_token_id or 0,
                return_dict_in_generate=True, output_logits=True,
            )
        hf_tokens = hf_out.sequences[0, len(prompt):].tolist()
        assert len(hf_tokens) == len(hf_out.logits) == MAX_NEW_TOKENS
        hf_logprobs = [torch.log_softmax(step[0].float(), -1)[t].item() for step, t in zip(hf_out.logits, hf_tokens)]
        result[question] = (prompt, out, hf_tokens, hf_logprobs)
    return result


@pytest.mark.parametrize("question", QUESTIONS)
def test_chat_template_ids_match_transformers(smollm2_llm, smollm2_hf, question: str) -> None:
    _, hf_tokenizer = smollm2_hf
    expected = hf_tokenizer.apply_chat_template(chat(question), add_generation_prompt=True, tokenize=True)
    if not isinstance(expected, list):  # a BatchEncoding in recent transformers
        expected = expected["input_ids"]
    assert smollm2_llm.encode(chat(question)) == list(expected)


@pytest.mark.parametrize("question", QUESTIONS)
def test_greedy_answer_matches_transformers(answers, question: str) -> None:
    prompt, out, hf_tokens, hf_logprobs = answers[question]
    assert out.prompt_token_ids == prompt
    assert out.token_ids == hf_tokens, f"pdtune {out.token_ids} != transformers {hf_tokens}"
    assert len(out.logprobs) == len(hf_tokens)
    for j, (lp, token, hf_lp) in enumerate(zip(out.logprobs, hf_tokens, hf_logprobs)):
        assert lp.token_id == token
        assert abs(lp.logprob - hf_lp) <= LOGPROB_ATOL, f"token {j}: pdtune {lp.logprob:.5f} vs transformers {hf_lp:.5f}"


def test_capital_of_france_is_paris(smollm2_llm, answers) -> None:
    """Without ignore_eos the answer stops at EOS, is the parity run's prefix, and names Paris."""
    question = "What is the capital of France?"
    _, parity_out, _, _ = answers[question]
    out = smollm2_llm.generate([chat(question)], SamplingParams(temperature=0.0, max_tokens=32))[0]
    assert out.finish_reason == "stop", out
    assert out.token_ids[-1] in smollm2_llm.tokenizer.eos_token_ids
    assert out.token_ids == parity_out.token_ids[:len(out.token_ids)]
    assert "Paris" in out.text, out.text


def test_a_stop_string_cuts_the_real_tokenizers_text_where_the_whole_text_says(smollm2_llm) -> None:
    """Stop strings are looked for in the last tokens' text only: with the real BPE tokenizer
    (merged pieces, leading spaces) the cut must still be the first occurrence in the full text."""
    question = "Explain in a few sentences why the sky is blue."
    full = smollm2_llm.generate([chat(question)], SamplingParams(temperature=0.0, max_tokens=64, ignore_eos=True))[0]
    words = [w for w in full.text.split() if len(w) > 4 and w.isalpha()]
    stop = " " + words[len(words) // 2]
    assert stop in full.text
    out = smollm2_llm.generate([chat(question)], SamplingParams(temperature=0.0, max_tokens=64, ignore_eos=True,
                                                               stop=(stop,)))[0]
    assert out.finish_reason == "stop" and out.text == full.text[:full.text.find(stop)]
