"""Checks of the names in the settings that only the layers they name can make.

:mod:`tagbox_pipeline.config` validates types and ranges and knows nothing of taggers or plugins;
this module, a layer above it, checks that every tagger and source named in ``taggers`` /
``source_taggers`` / ``rivals.candidates`` exists and that every post chain entry builds a pedalboard plugin. Each
failure is a :class:`~tagbox_pipeline.errors.ConfigError` naming the key and, when there is one,
the settings file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Settings, load_settings
from .errors import ConfigError, UserError
from .post import make_plugin
from .taggers.registry import info
from .taggers.vocabulary import resolve_source


def _named_checks(settings: Settings) -> list[tuple[str, Callable[[], object]]]:
    checks: list[tuple[str, Callable[[], object]]] = [("taggers", lambda n=name: info(n)) for name in settings.taggers]
    for source, names in settings.source_taggers.items():
        checks.append(("source_taggers", lambda s=source: resolve_source(s)))
        checks += [("source_taggers", lambda n=name: info(n)) for name in names]
    checks += [("rivals.candidates", lambda s=source: resolve_source(s)) for source in settings.rivals.candidates]
    for source, chain in settings.post.items():
        checks += [(f"'post.{source}.{i}'", lambda spec=spec: make_plugin(spec.plugin, spec.params))
                   for i, spec in enumerate(chain)]
    return checks


def check_settings(settings: Settings, path: Path | None = None) -> Settings:
    """Return ``settings`` when every tagger, source and post plugin it names exists.

    Raises:
        ConfigError: ``setting KEY: cause``, naming the file ``path`` when given.
    """
    for key, check in _named_checks(settings):
        try:
            check()
        except (UserError, ValueError) as exc:
            cause = exc.cause if isinstance(exc, UserError) else str(exc)
            raise ConfigError(f"setting {key}: {cause}", path) from None
    return settings


def load_checked_settings(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """:func:`~tagbox_pipeline.config.load_settings`, then :func:`check_settings`."""
    return check_settings(load_settings(path, overrides), path)
