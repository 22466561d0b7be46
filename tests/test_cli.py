import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_datasets_command(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ocvis", "datasets", "--root", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "digits" in out and "mnist" in out and "cifar10" in out
    line = next(l for l in out.splitlines() if l.startswith("mnist"))
    assert " no " in line and str(tmp_path) in line
