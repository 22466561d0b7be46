"""A method for the Ray tests: its fit announces itself with a file named by its process id
in ``$OCVIS_TEST_GATE`` and waits for a ``release`` file there, so a test can kill the
worker process that runs it. Its score is PCA's (features: pixels)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from ocvis.methods import register
from ocvis.methods.shallow import PCA


@register
class GatedPCA(PCA):
    name = "gated-pca"
    title = "PCA that waits for a release file (tests)"
    paper_key = None
    paper_label = None

    def _fit_features(self, x, hooks):
        gate = Path(os.environ["OCVIS_TEST_GATE"])
        (gate / f"{os.getpid()}-{time.monotonic_ns()}").write_text("started")
        deadline = time.monotonic() + 600
        while not (gate / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return super()._fit_features(x, hooks)
