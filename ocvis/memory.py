"""Peak resident memory of this process: the one reading of it for bench rows, the
performance command and the memory benchmarks (no torch import, so a measuring child
process stays as small as what it measures)."""
from __future__ import annotations

import sys
from pathlib import Path


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window for this process (Linux: writing 5 to
    ``/proc/self/clear_refs`` resets VmHWM to the current RSS); False where that is not
    possible, and :func:`peak_rss_mib` then reports the process's peak since it started."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float | None:
    """The process's peak resident memory (MiB) since :func:`reset_peak_rss` or its start:
    VmHWM on Linux (not ``ru_maxrss``, which Linux keeps across fork + exec, so a child of a
    large process would report the parent's peak), ``ru_maxrss`` elsewhere (bytes on
    macOS, KiB otherwise); None if neither exists."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024
