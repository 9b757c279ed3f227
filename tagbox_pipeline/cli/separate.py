"""`tagbox separate INPUT... --sources drums,piano --out DIR`: stems for each input, in this process.

Every input is validated and planned first; models are loaded once; then each track is separated
with a progress bar over chunks × sources. A failing input does not stop the others: the command
ends with a summary naming each failed file and its cause, and exit code 1. Problems that stop
everything (bad settings, unknown source, unloadable models) exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import UserError
from ..pipeline.options import add_settings_options, checked_sources, settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``separate`` subcommand."""
    parser = subparsers.add_parser(
        "separate", help="separate audio files into one stem per source plus a residual",
        description="Writes OUT/<input name>/<source>.wav (or .flac), residual.wav and manifest.json per input, "
                    "at the input's rate, channel count, length and bit depth (FLAC in: 24-bit WAV out). "
                    "An existing folder of the same name is replaced atomically. Exit code 1 when some input "
                    "failed (summary on stderr), 2 when nothing could run.")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="audio files (read only)")
    add_settings_options(parser)
    parser.set_defaults(func=run)


def _plan_all(inputs: list[Path], sources: list[str], settings, failures: dict[Path, str]) -> list:
    """Plans of the inputs that are readable and whose track folder is not taken by an earlier input."""
    from .. import separation

    plans, owners = [], {}
    for path in inputs:
        try:
            plan = separation.plan_track(path, sources, settings)
        except UserError as exc:
            failures[path] = exc.cause
            continue
        if plan.name in owners:
            failures[path] = f"same output folder '{plan.name}' as {owners[plan.name]}; rename one of them"
            continue
        owners[plan.name] = path
        plans.append(plan)
    return plans


def run(args: argparse.Namespace) -> int:
    """Separate every input; returns 0, or 1 when some failed."""
    from .. import separation

    settings = settings_from_args(args)
    sources = checked_sources(args.sources)
    failures: dict[Path, str] = {}
    plans = _plan_all(args.inputs, sources, settings, failures)
    console = Console(stderr=True)
    if plans:
        models = separation.load_models(settings)
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("chunks × sources", total=sum(len(p.chunks) * len(sources) for p in plans))
            for plan in plans:
                bar.update(task, description=plan.name)
                try:
                    separation.run_track(plan, args.out, models, lambda n: bar.advance(task, n))
                except UserError as exc:
                    failures[plan.path] = exc.cause
                    continue
                except Exception as exc:  # one bad track must not stop the others; reported below
                    failures[plan.path] = f"{type(exc).__name__}: {exc}"
                    continue
                print(f"{plan.path} -> {args.out / plan.name}")
    for path, cause in failures.items():
        print(f"tagbox: failed: {path}: {cause}", file=sys.stderr)
    if failures:
        print(f"tagbox: {len(failures)} of {len(args.inputs)} inputs failed", file=sys.stderr)
    return 1 if failures else 0
