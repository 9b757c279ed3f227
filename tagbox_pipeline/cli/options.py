"""Command-line options shared by `tagbox separate`, `tagbox watch`, `tagbox sweep` and `tagbox serve`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Settings
from ..settings_check import load_checked_settings
from ..errors import UserError

#: default number of LocalCluster workers for ``--dask`` without an address
DASK_LOCAL_WORKERS = 2


def add_run_command(subparsers: argparse._SubParsersAction, name: str, doc: str,
                    run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """Add subcommand ``name`` with the run options (:func:`add_run_options`), calling ``run``; returns its
    parser for the command's own arguments. ``doc`` (the command module's docstring) gives the help:
    its first line (without the full stop) in `tagbox --help`, its body in `tagbox NAME --help`."""
    summary, _, body = doc.strip().partition("\n")
    parser = subparsers.add_parser(name, help=summary[:1].lower() + summary[1:].rstrip("."),
                                   description=" ".join(body.split()))
    add_run_options(parser)
    parser.set_defaults(func=run)
    return parser


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add the settings options (:func:`add_settings_options`) and --dask to ``parser``."""
    add_settings_options(parser)
    parser.add_argument("--dask", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="run chunk tasks on Dask: a scheduler ADDRESS, or a local cluster when omitted")
    parser.add_argument("--dask-workers", type=int, default=DASK_LOCAL_WORKERS,
                        help=f"workers of the local Dask cluster (default {DASK_LOCAL_WORKERS})")


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """Add --out, --sources, --config and the settings overrides (shared with `tagbox separate`)."""
    parser.add_argument("--out", type=Path, required=True, help="output folder (stems, ledger, result store)")
    parser.add_argument("--sources", required=True,
                        help="comma-separated source names, e.g. drums,piano; 'auto': a stem for every instrument "
                             "the taggers detect (named in the manifest with its evidence, see [detection])")
    parser.add_argument("--config", type=Path, help="TOML settings file")
    parser.add_argument("--prior", choices=["nmf", "jukebox"], help="prior (default from settings: nmf)")
    parser.add_argument("--taggers", help="comma-separated tagger names")
    parser.add_argument("--steps", type=int, help="optimiser steps per chunk (default 0; the NMF prior steps "
                                                    "requests of at most [nmf] step_max_sources sources, default 2)")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="compute device")
    parser.add_argument("--format", choices=["wav", "flac"], help="stem file format (default wav)")
    parser.add_argument("--weights", type=Path, help="Jukebox VQ-VAE weights file (jukebox prior)")
    parser.add_argument("--reference-faithful", action="store_true", default=None,
                        help="Jukebox prior: reproduce the seed code's choices")


def checked_sources(text: str) -> list[str]:
    """``"drums, piano"`` → ``["drums", "piano"]``, checked against the source vocabulary.

    Raises:
        UserError: for an empty list, or an unknown or path-like name (listing close names).
    """
    sources = [s.strip() for s in text.split(",") if s.strip()]
    if not sources:
        raise UserError("--sources: give at least one source name, e.g. --sources drums,piano")
    from ..track_plan import validate_sources

    validate_sources(sources)
    return sources


def checked_out_dir(out: Path) -> Path:
    """Create ``out`` if needed and prove it is writable (a temp file is made and removed).

    Raises:
        UserError: naming ``out`` and the OS's reason (read-only file system, permission...), so a
            bad output folder stops the command with one line instead of failing every input.
    """
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out, prefix=".tagbox-write-check-"):
            pass
    except OSError as exc:
        raise UserError(f"output folder is not writable ({exc.strerror or exc})", out) from None
    return out


def checked_models(settings: Settings) -> None:
    """Load the taggers and the prior now (kept for the flows of this process), so an unknown tagger
    or missing or corrupt weights stop the command with one line (exit 2) instead of quarantining
    every input."""
    from ..pipeline.track import separator_for

    separator_for(settings)


def checked_prefect_home() -> None:
    """With no ``PREFECT_API_URL``, Prefect keeps its local API's database in ``PREFECT_HOME``: prove
    that folder can be made and written to now.

    Raises:
        UserError: naming the folder and the OS's reason (otherwise Prefect only reports, after two
            minutes, that its local API server timed out).
    """
    import tempfile

    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url:
        return
    home = Path(settings.home)
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=home, prefix=".tagbox-write-check-"):
            pass
    except OSError as exc:
        raise UserError(f"Prefect's home folder is not writable ({exc.strerror or exc}); set PREFECT_HOME to a "
                        "writable folder, or PREFECT_API_URL to a running Prefect server", home) from None


def prepared_run(args: argparse.Namespace) -> tuple[Settings, list[str]]:
    """What `watch`, `sweep` and `serve` check after their folder layout, before any work: the
    settings (a bad config fails here, before anything is watched), the sources, the models (loaded
    once for the flows of this process), a writable OUT and a writable Prefect home. Returns the
    settings and the sources."""
    settings = settings_from_args(args)
    sources = checked_sources(args.sources)
    checked_models(settings)
    checked_prefect_home()
    checked_out_dir(args.out)
    return settings, sources


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags (only those set), e.g. ``{"steps": 1}``."""
    taggers = None if args.taggers is None else [t.strip() for t in args.taggers.split(",") if t.strip()]
    values = {"prior": args.prior, "steps": args.steps, "seed": args.seed, "device": args.device, "taggers": taggers,
              "format": args.format, "jukebox.weights": None if args.weights is None else str(args.weights),
              "jukebox.reference_faithful": args.reference_faithful}
    return {key: value for key, value in values.items() if value is not None}


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from ``--config`` with the CLI overrides applied (ConfigError names a bad key)."""
    return load_checked_settings(args.config, overrides_from_args(args))
