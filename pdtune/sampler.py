"""Logits to tokens: greedy, temperature, top-k, top-p, min-p, per-request seeds and logprobs."""

from __future__ import annotations

import torch

from pdtune.executor.upload import upload
from pdtune.request.sequence import Sequence, TokenLogprobs


def _to_device(values: list, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return upload(torch.tensor(values, dtype=dtype), device)


class Sampler:
    """Samples by the exponential race (argmax of p / Exp(1) noise), so a seeded request draws its
    noise from its own generator and gets the same tokens whatever else is in the batch."""

    def __init__(self, device: torch.device, seed: int):
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def _noise(self, seqs: list[Sequence], vocab: int) -> torch.Tensor:
        noise = torch.empty(len(seqs), vocab, device=self.device).exponential_(generator=self.generator)
        for i, seq in enumerate(seqs):
            if seq.params.seed is not None:
                if seq.generator is None:
                    seq.generator = torch.Generator(device=self.device).manual_seed(seq.params.seed)
                noise[i].exponential_(generator=seq.generator)
        return noise

    @staticmethod
    def _filtered_probs(logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
        params = [s.params for s in seqs]
        dev = logits.device
        temps = _to_device([p.temperature for p in params], torch.float32, dev).unsqueeze(1)
        logits = logits / temps
        vocab = logits.shape[1]
        top_k = _to_device([p.top_k or vocab for p in params], torch.int64, dev).unsqueeze(1)
        top_p = _to_device([p.top_p for p in params], torch.float32, dev).unsqueeze(1)
        min_p = _to_device([p.min_p for p in params], torch.float32, dev).unsqueeze(1)
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        ranks = torch.arange(vocab, device=dev).unsqueeze(0)
        sorted_probs = sorted_logits.softmax(dim=-1)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        drop = (ranks >= top_k) | (mass_before >= top_p) | (sorted_probs < min_p * sorted_probs[:, :1])
        drop[:, 0] = False
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        filtered = torch.empty_like(logits).scatter_(1, order, sorted_logits)
        return filtered.softmax(dim=-1)

    def __call__(self, logits: torch.Tensor, seqs: list[Sequence]) -> tuple[list[int], list[TokenLogprobs | None]]:
        return self.sample(logits, seqs).resolve()

    def sample(self, logits: torch.Tensor, seqs: list[Sequence]) -> "SampledTokens":
        """Everything on the device, nothing read back: the next step can be launched before
        `resolve()` waits for these tokens."""
        tokens = logits.argmax(dim=-1)
        sampled = [i for i, s in enumerate(seqs) if not s.params.greedy]
        if sampled:
            rows = _to_device(sampled, torch.int64, logits.device)
            sub = [seqs[i] for i in sampled]
            probs = self._filtered_probs(logits[rows], sub)
            tokens[rows] = (probs / self._noise(sub, logits.shape[1])).argmax(dim=-1)
        wanted = [s.params.logprobs for s in seqs]
        if all(w is None for w in wanted):
            return SampledTokens(tokens, wanted)
        logp = logits.log_softmax(dim=-1)
        top_vals, top_ids = logp.topk(max(max(w or 0 for w in wanted), 1), dim=-1)
        chosen = logp.gather(1, tokens.unsqueeze(1)).squeeze(1)
        return SampledTokens(tokens, wanted, chosen, top_vals, top_ids)


def _to_host_async(t: torch.Tensor | None) -> torch.Tensor | None:
    """A copy into pinned host memory queued behind the step, so reading it waits for this step
    only, not for a next step queued after it on the same stream."""
    if t is None or not t.is_cuda:
        return t
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    return out.copy_(t, non_blocking=True)


class SampledTokens:
    """One step's sampled tokens (and logprobs): `tokens` stays on the device for the next step's
    inputs; host copies are queued at once and read by `resolve()`."""

    def __init__(self, tokens: torch.Tensor, wanted: list[int | None], chosen: torch.Tensor | None = None,
                 top_vals: torch.Tensor | None = None, top_ids: torch.Tensor | None = None):
        self.tokens, self.wanted = tokens, wanted
        self.host = [_to_host_async(t) for t in (tokens, chosen, top_vals, top_ids)]
        self.ready = None
        if tokens.is_cuda:
            self.ready = torch.cuda.Event()
            self.ready.record()

    def resolve(self) -> tuple[list[int], list[TokenLogprobs | None]]:
        if self.ready is not None:
            self.ready.synchronize()  # the host waits here for this step's GPU work
        tokens, chosen, top_vals, top_ids = (None if t is None else t.tolist() for t in self.host)
        if chosen is None:
            return tokens, [None] * len(tokens)
        return tokens, [
            None if w is None else TokenLogprobs(tokens[i], chosen[i], list(zip(top_ids[i][:w], top_vals[i][:w])))
            for i, w in enumerate(self.wanted)
        ]
