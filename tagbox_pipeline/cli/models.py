"""`tagbox models list|fetch|verify|path`: the weights files behind the taggers and the Jukebox prior.

Names: ``musicnn`` (the checkpoints of the default taggers, from the musicnn 0.1.0 wheel: present when
that package is installed, as `make` does; after a plain ``pip install`` fetched once), the sota
taggers' weights (``fcn-mtat`` …) and ``jukebox-5b-vqvae`` (OpenAI's VQ-VAE, non-commercial
licence). The Jukebox file has no published sha256: ``fetch`` records size and sha256 beside it
(``<file>.json``) and ``verify`` checks against that record and loads every tensor. For offline use point ``--weights PATH`` (or
``$TAGBOX_JUKEBOX_WEIGHTS``) at a copy of the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..errors import UserError
from ..weights import WeightSpec


def _specs() -> dict[str, WeightSpec]:
    from ..priors.jukebox import checkpoint
    from ..taggers import musicnn_wheel, sota

    return {musicnn_wheel.NAME: musicnn_wheel.weight_spec(),
            **{name: sota.weight_spec(name) for name in sorted(sota.SOTA_MODELS)},
            checkpoint.VQVAE_SPEC.name: checkpoint.VQVAE_SPEC}


def _is_musicnn(spec: WeightSpec) -> bool:
    from ..taggers import musicnn_wheel

    return spec.name == musicnn_wheel.NAME


def _is_jukebox(spec: WeightSpec) -> bool:
    from ..priors.jukebox import checkpoint

    return spec.name == checkpoint.VQVAE_SPEC.name


def _spec(name: str) -> WeightSpec:
    specs = _specs()
    if name not in specs:
        raise UserError(f"unknown weights {name!r}; known: {', '.join(specs)}")
    return specs[name]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``models`` with its four actions."""
    parser = subparsers.add_parser("models", help="list, download, verify or locate model weights")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every weights file, whether present, its licence").set_defaults(func=run_list)
    for action, helptext, func in (("fetch", "download into the user cache (sha256 checked or recorded)", run_fetch),
                                   ("verify", "check a file against its pinned or recorded sha256", run_verify),
                                   ("path", "print where the file is", run_path)):
        sub = actions.add_parser(action, help=helptext)
        sub.add_argument("name", help="weights name, e.g. musicnn, fcn-mtat or jukebox-5b-vqvae")
        if action == "fetch":
            sub.add_argument("--force", action="store_true", help="download again even if a valid copy is cached")
        else:
            sub.add_argument("--weights", type=Path, help="jukebox-5b-vqvae only: use this local file "
                                                          "(default: $TAGBOX_JUKEBOX_WEIGHTS, then the cache)")
        sub.set_defaults(func=func)


def _locate(spec: WeightSpec, weights: Path | None) -> Path:
    """The local file of ``spec`` (Jukebox: ``--weights``, ``$TAGBOX_JUKEBOX_WEIGHTS``, model dir, cache;
    musicnn: the folder of its checkpoint folders, installed package first)."""
    from ..weights import locate

    if _is_jukebox(spec):
        from ..priors.jukebox import resolve_weights

        return resolve_weights(weights)
    if weights is not None:
        raise UserError(f"--weights applies to the Jukebox VQ-VAE only, not to {spec.name}")
    if _is_musicnn(spec):
        from ..taggers import musicnn_wheel

        return musicnn_wheel.package_dir()
    return locate(spec)


def _presence(spec: WeightSpec) -> tuple[bool, Path]:
    """Whether ``spec`` is present, and the first place it is looked for (musicnn: the installed package)."""
    from ..weights import candidates, is_present

    if _is_musicnn(spec):
        from ..taggers import musicnn_wheel

        return musicnn_wheel.is_present(), musicnn_wheel.places()[0]
    return is_present(spec), candidates(spec)[0]


def run_list(args: argparse.Namespace) -> int:
    """Print the weights table."""
    table = Table("name", "present", "file (first place looked)", "licence")
    for name, spec in _specs().items():
        present, place = _presence(spec)
        table.add_row(name, "yes" if present else "no", str(place), spec.licence)
    Console(width=200).print(table)
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    """Download one weights file (or find it already cached); Jukebox downloads must load as the VQ-VAE."""
    from ..weights import fetch, read_sidecar

    spec = _spec(args.name)
    check = None
    if _is_jukebox(spec):
        from ..priors.jukebox import load_checkpoint

        check = load_checkpoint
    path = fetch(spec, force=args.force, check=check)
    record = read_sidecar(path) or {}
    print(f"{path}" + (f" ({record['size']} bytes, sha256 {record['sha256']}, from {record['url']})"
                       if record else ""))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """Verify a located weights file: pinned or recorded sha256; Jukebox: also every tensor's name and shape;
    musicnn: every file the taggers read (and the licence) against its pin."""
    from ..weights import read_sidecar, verify

    spec = _spec(args.name)
    path = _locate(spec, args.weights)
    # musicnn: ``path`` is the package folder; the wheel's files lie at their wheel paths below its parent
    digest = verify(spec, path.parent if _is_musicnn(spec) else path)
    basis = "pinned" if spec.sha256 else "recorded at download" if read_sidecar(path) else "not pinned, no record"
    detail = ""
    if _is_musicnn(spec):
        detail = f", its {len(spec.members)} files here match their pins"
    elif _is_jukebox(spec):
        from ..priors.jukebox import load_checkpoint

        detail = f", {len(load_checkpoint(path))} tensors of the 5b VQ-VAE"
    print(f"{path}: sha256 {digest} ({basis}){detail} OK")
    return 0


def run_path(args: argparse.Namespace) -> int:
    """Print the path of a located weights file."""
    spec = _spec(args.name)
    print(_locate(spec, args.weights))
    return 0
