"""The KV page size an engine takes when none is configured."""

import pytest
import torch

from pdtune.config import EngineConfig
from pdtune.errors import PdtuneError
from pdtune.model import loader
from pdtune.model.ops import resolve_block_size


@pytest.mark.parametrize(("device", "capability", "backend", "pages"), [
    ("cpu", None, "auto", 16),  # the torch reference path: finer prefix reuse
    ("cuda", (9, 0), "auto", 64),  # Hopper: decode attention bulk-copies 64-token page tiles
    ("cuda", (9, 0), "torch", 16),  # the torch path copies nothing by TMA
    ("cuda", (8, 0), "auto", 16),  # Ampere has no TMA
])
def test_the_page_size_follows_the_decode_attention_path(monkeypatch, device: str, capability, backend: str,
                                                         pages: int) -> None:
    monkeypatch.setattr(loader, "resolve_device", lambda name: torch.device(device))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda dev=None: capability)
    config = resolve_block_size(EngineConfig(attention_backend=backend))
    assert config.block_size == pages
    assert resolve_block_size(EngineConfig(block_size=32, attention_backend=backend)).block_size == 32


def test_a_configured_page_size_must_be_a_power_of_two() -> None:
    with pytest.raises(PdtuneError, match="power of two"):
        EngineConfig(block_size=48)


def test_the_engine_reports_the_page_size_it_took(tiny_hf_model) -> None:
    from pdtune import LLM

    llm = LLM(tiny_hf_model("llama").folder, num_kv_blocks=8)
    assert llm.engine.config.block_size == 16 and llm.engine.kv_capacity_tokens == 8 * 16
