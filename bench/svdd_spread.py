"""Deep SVDD's collapse check (``ocvis.methods.deep_svdd.spread_check``) on a stored run,
for runs made before the check was part of ``fit_info``.

    OCVIS_DATA_ROOT=../shared/datasets python bench/svdd_spread.py RUNS_DIR RUN_ID \\
        DATASET PROTOCOL NORMAL N_TRAIN

Prints the RMS distance of the training features to c after training, their mean
per-dimension std relative to |c| / sqrt(D), and whether that is a collapse. (The RMS
distance at the initial forward pass is not stored with a run, so it is not printed.)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str]) -> None:
    from ocvis.data import make_task
    from ocvis.methods import make_method
    from ocvis.methods.deep_svdd import spread_check
    from ocvis.runs import RunStore

    root, rid, ds, proto, normal, n = argv
    store = RunStore(root)
    meta = store.read(rid)
    m = make_method("deep-svdd", meta["preset"], **(meta.get("overrides") or {}))
    m.load_state_dict(store.model_state(rid))
    task = make_task(ds, proto, normal, n_train=int(n))
    z = torch.from_numpy(m.embed(torch.as_tensor(task.x_train))).float()
    s = spread_check(z, z, m.nets["centre"].c.detach().cpu())
    print(json.dumps({k: s[k] for k in ("rms_final", "per_dim_std_rel", "collapsed")}))


if __name__ == "__main__":
    main(sys.argv[1:])
