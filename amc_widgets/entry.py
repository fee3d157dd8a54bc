"""The image's entry point: SageMaker runs it as ``train`` or ``serve``; no argument means train."""

from __future__ import annotations

import sys

from amc_widgets.core.container_contract import SERVE_COMMAND, TRAIN_COMMAND


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command, rest = (argv[0], argv[1:]) if argv else (TRAIN_COMMAND, [])
    if command == SERVE_COMMAND:
        from amc_widgets.serving.server import main as serve

        return serve(rest)
    if command != TRAIN_COMMAND:
        print(f"ERROR: unknown command {command!r}: use {TRAIN_COMMAND} or {SERVE_COMMAND}", file=sys.stderr)
        return 2
    from amc_widgets.training.launcher import main as train

    return train()
