"""Serve the watch and the nightly sweep as Prefect deployments (one machine).

Registers 'watch-inbox/watch' (started at once, runs until stopped) and 'sweep-archive/nightly'
(Cron, default 02:00 local time) and executes their runs. Uses Prefect's ephemeral local server
unless PREFECT_API_URL points to one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..layout import check_serve
from ..pipeline.inbox import move_folders
from .options import add_run_command, overrides_from_args, prepared_run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand."""
    parser = add_run_command(subparsers, "serve", __doc__, run)
    parser.add_argument("--inbox", type=Path, help="folder to watch")
    parser.add_argument("--archive", type=Path, help="archive folder to sweep nightly (only read)")
    parser.add_argument("--cron", default=None, help="sweep schedule (default '0 2 * * *')")
    parser.add_argument("--timezone", default=None, help="IANA time zone of the schedule (default: local)")


def run(args: argparse.Namespace) -> int:
    """Build both deployments and serve them until Ctrl-C."""
    if args.inbox is None and args.archive is None:
        raise UserError("serve: give --inbox and/or --archive")
    if args.archive is not None and not args.archive.is_dir():
        raise UserError("archive folder not found", args.archive)
    check_serve(args.inbox, args.archive, args.out, move_folders(args.inbox) if args.inbox is not None else ())
    _, sources = prepared_run(args)
    from ..pipeline.deployments import NIGHTLY_CRON, build_deployments, serve_deployments

    deployments = build_deployments(args.inbox, args.archive, args.out, sources, args.config,
                                    overrides_from_args(args), args.cron or NIGHTLY_CRON, args.timezone,
                                    args.dask, args.dask_workers)
    serve_deployments(deployments)
    return 0
