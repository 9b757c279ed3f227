"""Source vocabulary: plain source names -> the tags of each tagger dataset that describe them.

Datasets: ``mtat`` (MagnaTagATune top 50; the original musicnn MTT models use the same list),
``msd`` (Million Song Dataset top 50), ``jamendo`` (MTG-Jamendo top 50) and ``spectral`` (the
weight-free descriptor tagger of :mod:`.spectral`, for sources such as bass that MTAT/MSD lack). A source with no tag in a
dataset maps to an empty list there, so the engine can skip that tagger for it. Raw tag names of
any dataset are accepted as source names too.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from ..errors import UserError

DATASETS = ("mtat", "msd", "jamendo", "spectral")

J = "instrument---"
#: source name -> {dataset: tags}. Guided by the tags the bench-dev authors assigned per source.
_SOURCES: dict[str, dict[str, list[str]]] = {
    "drums": {"mtat": ["drums", "beat", "beats"], "jamendo": [J + "drums", J + "drummachine"]},
    "piano": {"mtat": ["piano"], "jamendo": [J + "piano", J + "electricpiano"]},
    "guitar": {"mtat": ["guitar"], "msd": ["guitar"], "jamendo": [J + "guitar", J + "acousticguitar", J + "electricguitar"]},
    "acoustic guitar": {"msd": ["acoustic", "guitar"], "mtat": ["guitar"], "jamendo": [J + "acousticguitar"]},
    "electric guitar": {"mtat": ["guitar"], "jamendo": [J + "electricguitar"]},
    "bass": {"jamendo": [J + "bass"], "spectral": ["low"]},
    "vocals": {"mtat": ["vocal", "vocals", "singing", "voice"], "jamendo": [J + "voice"]},
    "female vocals": {"mtat": ["female", "female vocal", "female voice", "woman"], "msd": ["female vocalists", "female vocalist"], "jamendo": [J + "voice"]},
    "male vocals": {"mtat": ["male", "male vocal", "male voice", "man"], "msd": ["male vocalists"], "jamendo": [J + "voice"]},
    "choir": {"mtat": ["choir", "choral", "vocal", "vocals", "singing", "voice"], "jamendo": [J + "voice"]},
    "opera": {"mtat": ["opera", "singing"], "jamendo": [J + "voice"]},
    "violin": {"mtat": ["violin", "strings"], "jamendo": [J + "violin", J + "strings"]},
    "cello": {"mtat": ["cello", "strings"], "jamendo": [J + "strings"]},
    "strings": {"mtat": ["strings", "violin"], "jamendo": [J + "strings"]},
    "flute": {"mtat": ["flute"]},
    "synth": {"mtat": ["synth", "electronic"], "msd": ["electronic"], "jamendo": [J + "synthesizer"]},
    "organ": {"jamendo": [J + "keyboard"]},
    "keyboard": {"jamendo": [J + "keyboard", J + "electricpiano"]},
    "harpsichord": {"mtat": ["harpsichord"], "jamendo": [J + "keyboard"]},
    "harp": {"mtat": ["harp"]},
    "sitar": {"mtat": ["sitar", "indian"]},
}
#: sources whose components come in short bursts (a drum kit): the share-out also pulls them towards
#: transient components (``nmf.transient_weight``, :mod:`..priors.transients`)
_PERCUSSIVE = {"drums"}
_ALIASES = {
    "drum": "drums", "percussion": "drums", "drumkit": "drums", "vocal": "vocals", "voice": "vocals",
    "singing": "vocals", "violins": "violin", "synthesizer": "synth", "pianos": "piano",
    "guitars": "guitar", "bass guitar": "bass", "choral": "choir", "keys": "keyboard",
}


@dataclass(frozen=True)
class Source:
    """A requested source: its canonical name, the tags describing it per dataset, and whether it is a
    drum kit (its components come in short bursts)."""

    name: str
    tags: dict[str, list[str]] = field(default_factory=dict)
    percussive: bool = False

    def tags_for(self, dataset: str) -> list[str]:
        """Tags of ``dataset`` describing this source (empty if the dataset has none)."""
        return list(self.tags.get(dataset, []))


@lru_cache(maxsize=None)
def dataset_tags(dataset: str) -> tuple[str, ...]:
    """The 50 tag names of a dataset, in the taggers' output order."""
    text = resources.files("tagbox_pipeline").joinpath("data", "tags", f"{dataset}.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def known_sources() -> list[str]:
    """Canonical source names (aliases and raw tags are accepted by :func:`resolve_source` too)."""
    return sorted(_SOURCES)


def _check_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise UserError("empty source name")
    if any(bad in cleaned for bad in ("/", "\\", "\x00", "..")) or cleaned.startswith("."):
        raise UserError(f"source name {name!r} is not allowed (it looks like a path)")
    return cleaned


def resolve_source(name: str) -> Source:
    """Map a plain source name, an alias or a raw tag name to a :class:`Source`.

    Raises:
        UserError: for an unknown or path-like name; the message lists the closest known names.
    """
    cleaned = _check_name(name)
    key = cleaned.lower()
    key = _ALIASES.get(key, key)
    if key in _SOURCES:
        return Source(key, {ds: list(tags) for ds, tags in _SOURCES[key].items()}, key in _PERCUSSIVE)
    raw = {ds: [cleaned] for ds in DATASETS if cleaned in dataset_tags(ds)}
    if raw:
        return Source(cleaned, raw)
    choices = list(dict.fromkeys(known_sources() + sorted(_ALIASES) + [t for ds in DATASETS for t in dataset_tags(ds)]))
    close = difflib.get_close_matches(key, choices, n=5, cutoff=0.5)
    hint = f"; closest known names: {', '.join(close)}" if close else f"; known sources: {', '.join(known_sources())}"
    raise UserError(f"unknown source name {cleaned!r}{hint}")


def tag_indices(source: Source, tags: list[str] | tuple[str, ...], dataset: str) -> list[int]:
    """Output indices, in a tagger's tag list ``tags`` of ``dataset``, of the tags describing ``source``."""
    wanted = source.tags_for(dataset)
    return [i for i, tag in enumerate(tags) if tag in wanted]
