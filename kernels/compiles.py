"""How many kernel variants Triton has compiled so far: a JIT compile inside a timed run stalls
the engine loop while it compiles, so a benchmark counts them around each run."""

from __future__ import annotations

import sys


def compiled_variants() -> int | None:
    """Compiled variants of this package's Triton kernels in this process (every device); None
    where Triton keeps no per-device cache to count (the CPU interpreter, or a layout this code
    does not know)."""
    total, found = 0, False
    for name, module in list(sys.modules.items()):
        if not name.startswith(__package__ + ".") or module is None:
            continue
        for obj in vars(module).values():
            caches = getattr(obj, "device_caches", None)
            if caches is None or getattr(obj, "__module__", None) != name:
                continue
            try:
                total += sum(len(cache[0]) for cache in caches.values())
            except (TypeError, IndexError, KeyError):
                return None
            found = True
    return total if found else None
