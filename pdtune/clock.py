"""The clocks an engine runs on: the host's, or a virtual GPU's (`bench --simulate`), which moves
only when the engine waits for that GPU. Both read in seconds."""

from __future__ import annotations

import time


class HostClock:
    @staticmethod
    def now() -> float:
        return time.perf_counter()

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds)


class VirtualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def advance_to(self, t: float) -> None:
        self.t = max(self.t, t)

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


HOST_CLOCK = HostClock()
