"""How well a stored RotNet run learned its proxy task: rotation accuracy per turn.

    OCVIS_DATA_ROOT=../shared/datasets python bench/diag_rotation.py RUN_ID [RUN_ID ...]

For each run (``$OCVIS_RUNS_DIR``): the share of images whose turn (0 / 90 / 180 / 270
degrees) the rotation head predicts right, on the first 1,000 clean (un-augmented) training
images, the first 500 normal and the first 500 abnormal test images. A rotation score
separates normal from abnormal by exactly this difference; KDE on the features does not use
the head at all.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def turn_accuracy(method, x: torch.Tensor) -> list[float]:
    bb, head = method.backbone_.eval(), method.nets["head"].eval()
    out = []
    with torch.no_grad():
        for k in range(4):
            pred = torch.cat([head(bb(torch.rot90(b, k, (2, 3)))).argmax(1)
                              for b in torch.split(x, 250)])
            out.append(float((pred == k).float().mean()))
    return out


def main(argv: list[str]) -> int:
    from ocvis.experiment import load_run_method, task_of_run
    from ocvis.runs import RunStore

    store = RunStore()
    print("| run | images | 0 | 90 | 180 | 270 |")
    print("|---|---|---|---|---|---|")
    for rid in argv:
        m = load_run_method(store, rid)
        task = task_of_run(store.read(rid))
        y = np.asarray(task.y_test)
        xt = torch.as_tensor(task.x_test).float()
        groups = {"train (clean)": torch.as_tensor(task.x_train[:1000]).float(),
                  "test normal": xt[torch.as_tensor(y == 0)][:500],
                  "test abnormal": xt[torch.as_tensor(y == 1)][:500]}
        for name, x in groups.items():
            acc = turn_accuracy(m, x)
            print(f"| {rid} | {name} | " + " | ".join(f"{100 * a:.1f}" for a in acc) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
