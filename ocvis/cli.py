"""Command line: ``python -m ocvis {datasets,run,bench} ...`` (same library as the UI)."""
from __future__ import annotations

import argparse
import logging
import sys

from ocvis.errors import OcvisError


def _cmd_datasets(args: argparse.Namespace) -> int:
    from ocvis.data import describe_datasets

    rows = describe_datasets(args.root)
    w = max(len(r["name"]) for r in rows)
    print(f"{'name':<{w}}  present  classes  channels  location")
    for r in rows:
        print(f"{r['name']:<{w}}  {'yes' if r['present'] else 'no ':<7}  {r['classes']:>7}  "
              f"{r['channels']:>8}  {r['location']}")
    print("\nAlso: folder:<path> for any folder of images (<path>/<class>/*). "
          "Data root: $OCVIS_DATA_ROOT.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ocvis", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("datasets", help="list datasets, where their files are, and if present")
    d.add_argument("--root", default=None, help="data root (default $OCVIS_DATA_ROOT or ./data)")
    d.set_defaults(func=_cmd_datasets)
    try:
        from ocvis import experiments
    except ImportError:  # pragma: no cover - experiments arrive with the methods
        experiments = None
    if experiments is not None:
        experiments.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except OcvisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
