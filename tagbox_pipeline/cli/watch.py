"""Watch an inbox folder and separate each new file (Prefect flow).

Files are taken once their size and mtime hold still (settings.watch.stable_seconds) and they
decode; inputs then move to INBOX/processed/, failures to INBOX/failed/ with <name>.error.txt. A
content-hash ledger under OUT processes each content once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..layout import check_watch
from ..pipeline.inbox import move_folders
from .options import add_run_command, overrides_from_args, prepared_run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``watch`` subcommand."""
    parser = add_run_command(subparsers, "watch", __doc__, run)
    parser.add_argument("inbox", type=Path, help="folder to watch")
    parser.add_argument("--once", action="store_true", help="drain the inbox, then exit (0 when all handled)")


def run(args: argparse.Namespace) -> int:
    """Validate settings and sources, then run the ``watch-inbox`` flow (until Ctrl-C, or drained)."""
    check_watch(args.inbox, args.out, move_folders(args.inbox))
    settings, sources = prepared_run(args)
    from flows.separate_track import separate_track
    from flows.watch_inbox import watch_inbox

    from ..pipeline.track_runs import tracks_served_here

    with tracks_served_here(separate_track, settings):
        counts = watch_inbox(str(args.inbox), str(args.out), sources, str(args.config) if args.config else None,
                             overrides_from_args(args), args.once, args.dask, args.dask_workers)
    print("watch: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to do"))
    return 0
