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

    @staticmethod
    def stamp() -> float:
        """A trace row's time: the epoch's, to line a trace up with other logs."""
        return time.time()


class VirtualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def advance_to(self, t: float) -> None:
        self.t = max(self.t, t)

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)

    def stamp(self) -> float:
        """A trace row's time: the virtual GPU's (the host's would time the CPU's simulation)."""
        return self.t


HOST_CLOCK = HostClock()
