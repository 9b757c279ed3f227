"""Where things live: the read-only shared folder, the user cache and bundled data."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def shared_dir() -> Path | None:
    """The read-only `shared/` folder (reference goldens, bench-dev, tagger weights), or None.

    Looked up in ``$TAGBOX_SHARED``, then ``<repo>/../shared``.
    """
    env = os.environ.get("TAGBOX_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_DIR.parent / "shared")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def cache_dir() -> Path:
    """The user cache for downloaded weights (``$TAGBOX_CACHE_DIR`` or the platform cache dir)."""
    env = os.environ.get("TAGBOX_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("tagbox"))
