"""`tagbox models list|fetch|verify|path`: the weights files behind the taggers."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from ..errors import UserError


def _specs() -> dict:
    from ..taggers import sota

    return {name: sota.weight_spec(name) for name in sorted(sota.SOTA_MODELS)}


def _spec(name: str):
    specs = _specs()
    if name not in specs:
        raise UserError(f"unknown weights {name!r}; known: {', '.join(specs)} (the musicnn taggers ship with the "
                        "musicnn package and need no download)")
    return specs[name]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``models`` with its four actions."""
    parser = subparsers.add_parser("models", help="list, download, verify or locate tagger weights")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every weights file, whether present, its licence").set_defaults(func=run_list)
    for action, helptext, func in (("fetch", "download into the user cache (sha256-checked)", run_fetch),
                                   ("verify", "check a present file against its pinned sha256", run_verify),
                                   ("path", "print where the file is", run_path)):
        sub = actions.add_parser(action, help=helptext)
        sub.add_argument("name", help="weights name, e.g. fcn-mtat")
        sub.set_defaults(func=func)


def run_list(args: argparse.Namespace) -> int:
    """Print the weights table."""
    from ..weights import candidates, is_present

    table = Table("name", "present", "file (first place looked)", "licence")
    for name, spec in _specs().items():
        table.add_row(name, "yes" if is_present(spec) else "no", str(candidates(spec)[0]), spec.licence)
    Console().print(table)
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    """Download one weights file (or find it already cached)."""
    from ..weights import fetch

    print(fetch(_spec(args.name)))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """Verify the sha256 of a located weights file."""
    from ..weights import locate, verify

    spec = _spec(args.name)
    path = locate(spec)
    print(f"{path}: sha256 {verify(spec, path)} OK")
    return 0


def run_path(args: argparse.Namespace) -> int:
    """Print the path of a located weights file."""
    from ..weights import locate

    print(locate(_spec(args.name)))
    return 0
