"""Separate every audio file of an archive (read-only, mirrored under OUT).

Walks ARCHIVE recursively without modifying it, mirrors its folders under OUT, skips files whose
stems are up to date (same input sha256 and settings) and writes OUT/sweep-report.json. Exit code 1
when some file failed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..layout import check_sweep
from .options import add_run_command, overrides_from_args, prepared_run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` subcommand."""
    parser = add_run_command(subparsers, "sweep", __doc__, run)
    parser.add_argument("archive", type=Path, help="archive folder (only read)")


def run(args: argparse.Namespace) -> int:
    """Run the ``sweep-archive`` flow and print its counts."""
    if not args.archive.is_dir():
        raise UserError("archive folder not found", args.archive)
    check_sweep(args.archive, args.out)
    settings, sources = prepared_run(args)
    from flows.separate_track import separate_track
    from flows.sweep_archive import sweep_archive

    from ..pipeline.track_runs import tracks_served_here

    with tracks_served_here(separate_track, settings):
        report = sweep_archive(str(args.archive), str(args.out), sources, str(args.config) if args.config else None,
                               overrides_from_args(args), args.dask, args.dask_workers)
    print(f"sweep: {len(report['processed'])} processed, {len(report['skipped'])} skipped, "
          f"{len(report['failed'])} failed; report in {args.out / 'sweep-report.json'}")
    for failure in report["failed"]:
        print(f"  failed: {failure['path']}: {failure['cause']}")
    return 1 if report["failed"] else 0
