"""Where the original musicnn checkpoints are: the installed ``musicnn`` package, else its wheel unpacked.

The four TF1 checkpoints and the tag lists (``configuration.py``, read, never imported) come from the
pinned wheel ``musicnn-0.1.0-py3-none-any.whl``. `make` installs it with ``pip install --no-deps``;
a plain ``pip install`` of this project does not, and ``tagbox models fetch musicnn`` then downloads
the wheel with pip from your configured package index (or ``$TAGBOX_MUSICNN_WHEEL_URL``), checks it
against its pinned sha256 and unpacks only the files the taggers read, each pinned too, plus the ISC
licence, into ``$TAGBOX_CACHE_DIR/models/musicnn-0.1.0/`` (a copy may also sit in
``$TAGBOX_MODEL_DIR/musicnn-0.1.0/``).

pip is the ordinary client: ``python -m pip download --no-deps --only-binary :all: musicnn==0.1.0``
with the Python running tagbox, so the user's own index set-up applies (``pip.conf``,
``$PIP_INDEX_URL``, ``$PIP_EXTRA_INDEX_URL``, ``$PIP_FIND_LINKS``, …). ``$TAGBOX_MUSICNN_WHEEL_URL``
(URLs separated by spaces, tried in turn) replaces pip, e.g. for an internal mirror or an offline
copy (``file://`` URLs work).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import WeightsError
from ..weights import WeightSpec, candidates

#: the name users type: ``tagbox models fetch musicnn``
NAME = "musicnn"
VERSION = "0.1.0"
WHEEL = f"musicnn-{VERSION}-py3-none-any.whl"
_WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
#: what pip is asked for, after ``python -m`` (``--dest FOLDER`` follows)
PIP_ARGS = ("pip", "download", "--no-deps", "--only-binary", ":all:", f"musicnn=={VERSION}")
#: environment variable whose URLs (space separated) replace the download with pip
URL_ENV = "TAGBOX_MUSICNN_WHEEL_URL"
LICENCE = "ISC (musicnn, MTG-UPF)"
#: what the taggers read, by path inside the wheel, with its sha256 (the same in the installed package)
_FILES = {
    "musicnn/configuration.py": "00fd595eb16bad3a605e10bb6eaf0152cb8125bed6e2c884a636f679ae100419",
    "musicnn/MTT_musicnn/.index": "da2d7bb670b2b31e9bc441bb1bd75eca31b5b061f963cc1f9630c1aff3238f57",
    "musicnn/MTT_musicnn/.data-00000-of-00001": "041f3935e981a65cea739842d30c188d3a7d2adf4410955c8668eb3de4a5acab",
    "musicnn/MTT_vgg/.index": "4b0d3d2d02bbe0919c063c1fb74bfa9018ac3517e362d681b07444d4207a5f5f",
    "musicnn/MTT_vgg/.data-00000-of-00001": "458f5c8bcecc086a3bba3dce83809df6da6e0a3560a59ddd84711bf3d5fd8303",
    "musicnn/MSD_musicnn/.index": "87f3e0f3550c8d3bafc840374003e5c8af5eeb5ecf6add61af09a7822d3282c8",
    "musicnn/MSD_musicnn/.data-00000-of-00001": "8579734ee6388f799ed0def4bbd0d1fdcbeaf213ef2a9dc860917bd76a303de6",
    "musicnn/MSD_vgg/.index": "50e499238457558bba9f34f8b84d4afb8279afd43520cdf0a4fdf805a49c9ca3",
    "musicnn/MSD_vgg/.data-00000-of-00001": "9683d756b8311146534f333502ebf4a2a78a3e320c54ab0411dff6186d8375fc",
}
#: the wheel's licence file, unpacked beside the checkpoints (ISC: the notice goes with every copy)
_LICENCE_FILE = (f"musicnn-{VERSION}.dist-info/LICENSE.md",
                 "60c4194f702ddd969f969577743546327b4e9db560c07ec286be5cec27f55fcd")
_MISSING = ("the musicnn checkpoints are not installed: run `tagbox models fetch musicnn` "
           f"(or pip install --no-deps musicnn=={VERSION})")


def _pip_output():
    """Where pip's own output (progress, "Saved …") goes: our stderr, keeping stdout for the result;
    nowhere when stderr is no file (e.g. captured in-process)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return subprocess.DEVNULL


def pip_download(target: Path) -> str:
    """Download the wheel with pip into a temporary folder beside ``target`` and move it to ``target``
    (the :class:`~tagbox_pipeline.weights.WeightSpec` fetcher: the caller checks its sha256 and
    unpacks it). pip's messages are passed on to stderr as they come.

    Returns:
        where it came from, for the download record.

    Raises:
        WeightsError: pip is missing or failed (naming the command and pip's last message line and
            ``$TAGBOX_MUSICNN_WHEEL_URL``), or left no wheel.
    """
    command = [sys.executable, "-m", *PIP_ARGS]
    shown = f"`{shlex.join(command)}`"
    instead = f"; to download the wheel from elsewhere set {URL_ENV} to its URLs (separated by spaces)"
    with tempfile.TemporaryDirectory(prefix=".musicnn-pip.", dir=target.parent) as folder:
        try:
            process = subprocess.Popen([*command, "--dest", folder], stdin=subprocess.DEVNULL,
                                       stdout=_pip_output(), stderr=subprocess.PIPE, text=True, errors="replace")
        except OSError as exc:
            raise WeightsError(f"{shown} could not be started ({exc}){instead}") from None
        said = "no message"
        with process:
            for line in process.stderr:
                sys.stderr.write(line)
                said = line.strip() or said
        if process.returncode != 0:
            raise WeightsError(f"{shown} failed (exit {process.returncode}): {said}{instead}")
        wheel = Path(folder) / WHEEL
        if not wheel.is_file():
            found = ", ".join(sorted(p.name for p in Path(folder).iterdir())) or "nothing"
            raise WeightsError(f"{shown} saved {found}, not {WHEEL}{instead}")
        os.replace(wheel, target)
    return shlex.join(["pip", *PIP_ARGS[1:]])


def weight_spec() -> WeightSpec:
    """The wheel as an archive spec, unpacked into ``musicnn-0.1.0/`` (files at their wheel paths):
    downloaded by :func:`pip_download`, or from the URLs of ``$TAGBOX_MUSICNN_WHEEL_URL`` when set."""
    override = tuple(os.environ.get(URL_ENV, "").split())
    return WeightSpec(NAME, f"musicnn-{VERSION}", _WHEEL_SHA256, override, LICENCE,
                      members=(*_FILES.items(), _LICENCE_FILE), fetcher=None if override else pip_download)


def _installed_package() -> Path | None:
    """The installed ``musicnn`` package folder, if it holds the checkpoints (found without importing
    it: it imports TensorFlow)."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(spec.submodule_search_locations[0])
    return folder if (folder / "configuration.py").is_file() else None


def places() -> list[Path]:
    """Every folder looked in for the checkpoint folders, in order: the installed package, then
    ``musicnn/`` in each place of :func:`~tagbox_pipeline.weights.candidates` (model dir, cache)."""
    installed = _installed_package()
    return [*([installed] if installed else []), *(place / "musicnn" for place in candidates(weight_spec()))]


def is_present() -> bool:
    """Whether the checkpoints are installed: the package, or the wheel unpacked (not verified)."""
    return any(place.is_dir() for place in places())


def package_dir() -> Path:
    """The folder holding ``configuration.py`` and the checkpoint folders (``MTT_musicnn/`` …).

    Raises:
        WeightsError: neither the package is installed nor the wheel unpacked (naming the fix).
    """
    for place in places():
        if place.is_dir():
            return place
    raise WeightsError(_MISSING)
