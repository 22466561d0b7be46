"""bench/fill_queue.py: units claimed by one queue at a time, so queues can overlap."""
from __future__ import annotations

import os
import subprocess
import sys

from bench_scripts import load


def test_queue_units_are_claimed_once_and_stale_claims_are_taken_over(tmp_path, monkeypatch):
    q = load("fill_queue")
    monkeypatch.setattr(q, "RESULTS", tmp_path)
    x = q.plan()[-1]
    assert q.claim(x) and q.holder(x) == os.getpid()
    assert not q.claim(x)  # a live process (this one) holds it: a second queue skips it
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    q.hand_over(x, ended.pid)  # the unit's process ended without releasing (queue killed)
    assert q.holder(x) is None and q.claim(x) and q.holder(x) == os.getpid()
    q.release(x)
    assert not q.claim_path(x).exists() and q.holder(x) is None
