"""The `tagbox` command line: each subcommand lives in its own module with a ``register(subparsers)``.

User errors (:class:`~tagbox_pipeline.errors.UserError`) print one line naming the file and the
cause, and exit with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from ..allocator import tune_allocator
from ..errors import UserError

#: Subcommand modules, in help order. Each defines ``register(subparsers)`` which adds its parser(s)
#: and sets ``func`` (called with the parsed args, returns the exit code).
COMMAND_MODULES = ["tag", "separate", "models", "watch", "sweep", "serve"]

#: Seconds a run waits for its local (ephemeral) Prefect API server to answer, unless
#: ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` is set. Prefect's own 20 s is about twice the
#: start-up of an idle machine; a busy one (a separation on every core) took longer and the watcher died.
EPHEMERAL_STARTUP_TIMEOUT_S = 180


def prefect_defaults() -> None:
    """Set the Prefect settings `tagbox` depends on that the user left unset (environment variables,
    read once when Prefect is first imported, so call this before)."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_TIMEOUT_S))


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every available subcommand."""
    parser = argparse.ArgumentParser(prog="tagbox", description="Stem extraction steered by music taggers.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tagbox` console script."""
    tune_allocator()  # before any thread of Prefect, watchdog or the engine contends for an arena
    prefect_defaults()
    args = build_parser().parse_args(argv)
    # an unmakeable PREFECT_HOME is reported as one line by the commands that need it (options.py)
    warnings.filterwarnings("ignore", message="Failed to create the Prefect home directory")
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"tagbox: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tagbox: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
