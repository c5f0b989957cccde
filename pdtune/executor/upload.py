"""Host-to-device copies that never wait for the GPU.

A copy from pageable host memory synchronises its stream first, so it would wait for the step in
flight; overlapped scheduling must not. Pinned staging makes the copy asynchronous (torch's
caching host allocator keeps the block until the copy has run)."""

from __future__ import annotations

import torch


def upload(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)
