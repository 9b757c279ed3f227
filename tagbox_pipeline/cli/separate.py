"""`tagbox separate INPUT... --sources drums,piano --out DIR`: stems for each input, in this process.

The folder layout is checked first (no stem folder may hold an input), then every input is
validated and planned; models are loaded once; then each track is separated with a progress bar
over chunks × sources and published by the engine (post chains, spectrograms with
``--spectrograms``, the guarded atomic replace). A failing input does not stop the others: the command
ends with a summary naming each failed file and its cause, and exit code 1. Problems that stop
everything (bad settings, unknown source, unloadable models) exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..config import Settings
from ..errors import UserError
from ..layout import check_separate
from ..stem_folders import folder_for_input
from ..track_plan import TrackPlan, evidence_text, plan_track
from .options import add_settings_options, checked_sources, settings_from_args

if TYPE_CHECKING:
    from ..separation import Separator


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``separate`` subcommand."""
    parser = subparsers.add_parser(
        "separate", help="separate audio files into one stem per source plus a residual",
        description="Writes OUT/<input name>/<source>.wav (or .flac), residual.wav and manifest.json per input, "
                    "at the input's rate, channel count, length and bit depth (FLAC in: 24-bit WAV out). "
                    "The stem folder of the same input is replaced atomically; any other folder of that name is "
                    "left alone and the stems go to '<name> (n)'. Post chains of the settings "
                    "([[post.<source>]]) are applied, the unprocessed stems kept in raw/. Exit code 1 when some "
                    "input failed (summary on stderr), 2 when nothing could run.")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="audio files (read only)")
    add_settings_options(parser)
    parser.add_argument("--spectrograms", action="store_true",
                        help="also draw <stem>.spectrogram.png beside every stem")
    parser.set_defaults(func=run)


def _plan_all(inputs: list[Path], sources: list[str], settings: Settings,
              failures: dict[Path, str]) -> list[TrackPlan]:
    """Plans of the inputs that are readable and whose track folder is not taken by an earlier input."""
    plans: list[TrackPlan] = []
    owners: dict[str, Path] = {}
    for path in inputs:
        try:
            plan = plan_track(path, sources, settings)
        except UserError as exc:
            failures[path] = exc.cause
            continue
        if plan.name in owners:
            failures[path] = f"same output folder '{plan.name}' as {owners[plan.name]}; rename one of them"
            continue
        owners[plan.name] = path
        plans.append(plan)
    return plans


def _resolved(separator: Separator, plans: list[TrackPlan], failures: dict[Path, str]) -> list[TrackPlan]:
    """The plans with their sources detected where they are ``auto`` (each detection printed with its
    evidence); a track where nothing is detected goes to ``failures``."""
    resolved: list[TrackPlan] = []
    for plan in plans:
        try:
            plan = separator.resolve(plan)
        except UserError as exc:
            failures[plan.path] = exc.cause
            continue
        if plan.detected is not None:
            print(f"{plan.path}: detected {evidence_text(plan.detected)}", file=sys.stderr)
        resolved.append(plan)
    return resolved


def run(args: argparse.Namespace) -> int:
    """Separate every input; returns 0, or 1 when some failed."""
    from ..separation import Separator  # loads torch: not at import, so `tagbox --help` stays quick

    check_separate(args.inputs, args.out)
    settings = settings_from_args(args)
    sources = checked_sources(args.sources)
    failures: dict[Path, str] = {}
    plans = _plan_all(args.inputs, sources, settings, failures)
    console = Console(stderr=True)
    if plans:
        separator = Separator(settings)
        plans = _resolved(separator, plans, failures)
    if plans:
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("chunks × sources", total=sum(len(p.chunks) * len(p.sources) for p in plans))
            for plan in plans:
                bar.update(task, description=plan.name)
                try:
                    dest = folder_for_input(args.out, plan.name, plan.path)
                    published = separator.separate_file(plan, dest, lambda n: bar.advance(task, n), args.spectrograms)
                except UserError as exc:
                    failures[plan.path] = exc.cause
                    continue
                except Exception as exc:  # one bad track must not stop the others; reported below
                    failures[plan.path] = f"{type(exc).__name__}: {exc}"
                    continue
                print(f"{plan.path} -> {published.folder}")
    for path, cause in failures.items():
        print(f"tagbox: failed: {path}: {cause}", file=sys.stderr)
    if failures:
        print(f"tagbox: {len(failures)} of {len(args.inputs)} inputs failed", file=sys.stderr)
    return 1 if failures else 0
