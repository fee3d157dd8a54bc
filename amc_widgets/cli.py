"""``amc``: the command line on AMC's core."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amc_widgets.core.dataset_check import check_dataset
from amc_widgets.core.demo_dataset import make_demo_dataset


def _demo_dataset(args: argparse.Namespace) -> int:
    data_yaml = make_demo_dataset(Path(args.dest), train=args.train, val=args.val, size=args.size, seed=args.seed)
    print(f"Demo dataset written: {data_yaml}")
    return 0


def _check_dataset(args: argparse.Namespace) -> int:
    report = check_dataset(Path(args.path))
    print(report.summary())
    print("OK: ready for training" if report.ok else "NOT READY: fix the errors above")
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amc", description="AMC - Automated Model Creator")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo-dataset", help="write a synthetic solder-joint dataset (YOLO format)")
    demo.add_argument("dest", help="a new or empty folder")
    demo.add_argument("--train", type=int, default=240, help="training images (default 240)")
    demo.add_argument("--val", type=int, default=60, help="validation images (default 60)")
    demo.add_argument("--size", type=int, default=160, help="image size in pixels (default 160)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo_dataset)

    check = commands.add_parser("check-dataset", help="check a YOLO dataset folder before uploading it")
    check.add_argument("path")
    check.set_defaults(run=_check_dataset)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError) as exc:  # bad paths and bad input: one clear line, no traceback
        print(f"amc: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
