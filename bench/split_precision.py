"""Move the float32 rows of mixed-precision methods out of a table (session 13).

    python bench/split_precision.py bench/results/cifar10_two_stage.csv [...]

Since session 13 the methods with ``amp_safe`` losses (two-stage, E3Outlier) train under
bfloat16 autocast on CPUs that compute it natively (``mixed_precision="auto"``). A table keeps
one precision: the rows of such a method trained in float32 (their ``device`` does not say
"bfloat16 mixed precision") go to ``<table>_fp32.csv`` with their runs, so ``fill_queue.py``
refills them under the new precision and the two tables compare the precisions class by
class. Rows of other methods stay. Prints what moved; running it twice moves nothing more.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def split(path: Path) -> int:
    from ocvis.bench import read_rows, table_lock, write_table
    from ocvis.methods import get_method

    def float32(r: dict) -> bool:
        return getattr(get_method(r["method"]), "amp_safe", False) \
            and "bfloat16" not in (r.get("device") or "")

    dest = path.with_name(f"{path.stem}_fp32.csv")
    with table_lock(path), table_lock(dest):
        rows = read_rows(path)
        moved = [r for r in rows if float32(r)]
        if not moved:
            return 0
        write_table(dest, read_rows(dest) + moved)
        write_table(path, [r for r in rows if not float32(r)])
    for r in moved:
        print(f"{path.name} -> {dest.name}: {r['method']} class {r['normal_class']} seed "
              f"{r['seed']} (AUROC {r['auroc']}, {r.get('device')})")
    return len(moved)


if __name__ == "__main__":
    print(sum(split(Path(p)) for p in sys.argv[1:]), "row(s) moved")
