"""How well a stored RotNet run learned its proxy task: rotation accuracy per turn.

    OCVIS_DATA_ROOT=../shared/datasets python bench/diag_rotation.py RUN_ID [RUN_ID ...]
    OCVIS_DATA_ROOT=../shared/datasets python bench/diag_rotation.py --confusion RUN_ID ...

For each run (``$OCVIS_RUNS_DIR``): the share of images whose turn (0 / 90 / 180 / 270
degrees) the rotation head predicts right, on the first 1,000 clean (un-augmented) training
images, the first 500 normal and the first 500 abnormal test images. A rotation score
separates normal from abnormal by exactly this difference; KDE on the features does not use
the head at all.

``--confusion`` prints, for the clean training images, where each turn's predictions go
(rows: true turn, columns: predicted turn, % of the row), once with BatchNorm in eval mode
(its running statistics, as every score is computed) and once with batch statistics of a
batch that holds all four turns of the same images (as in training): the two differ only if
the running statistics treat some turn differently.
"""
from __future__ import annotations

import copy
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


def turn_confusion(method, x: torch.Tensor, batch_stats: bool = False) -> np.ndarray:
    """4 x 4 table, % of each true turn's views predicted as each turn. With
    ``batch_stats``, copies of the networks in training mode (the stored model's running
    averages stay as they are)."""
    bb, head = method.backbone_, method.nets["head"]
    if batch_stats:
        bb, head = copy.deepcopy(bb).train(), copy.deepcopy(head).train()
    else:
        bb, head = bb.eval(), head.eval()
    counts = np.zeros((4, 4))
    with torch.no_grad():
        for b in torch.split(x, 64):   # 4 x 64 views, the training batch's make-up
            views = torch.cat([torch.rot90(b, k, (2, 3)) for k in range(4)])
            pred = head(bb(views)).argmax(1).view(4, -1)
            for k in range(4):
                counts[k] += np.bincount(pred[k].numpy(), minlength=4)
    return 100 * counts / counts.sum(1, keepdims=True)


def confusion(argv: list[str]) -> int:
    from ocvis.experiment import load_run_method, task_of_run
    from ocvis.runs import RunStore

    store = RunStore()
    for rid in argv:
        m = load_run_method(store, rid)
        x = torch.as_tensor(task_of_run(store.read(rid)).x_train[:1024]).float()
        for batch_stats in (False, True):
            table = turn_confusion(m, x, batch_stats)
            mode = "batch statistics" if batch_stats else "running statistics"
            print(f"\n{rid}, clean training images, BatchNorm {mode}")
            print("| true \\ predicted | 0 | 90 | 180 | 270 |")
            print("|---|---|---|---|---|")
            for k, row in enumerate(table):
                print(f"| {90 * k} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
    return 0


def main(argv: list[str]) -> int:
    from ocvis.experiment import load_run_method, task_of_run
    from ocvis.runs import RunStore

    if argv[:1] == ["--confusion"]:
        return confusion(argv[1:])
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
