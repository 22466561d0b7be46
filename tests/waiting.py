"""Waiting on conditions in tests: poll with a generous timeout, never a fixed sleep that
hopes something has happened (the suite must pass on a loaded machine)."""
from __future__ import annotations

import time

GENEROUS = 300.0  # seconds: only a hang reaches it, never a slow machine


def wait_until(cond, timeout: float = GENEROUS, what: str = "condition", every: float = 0.05):
    """Poll ``cond()`` until it returns something truthy and return that."""
    t0 = time.monotonic()
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
