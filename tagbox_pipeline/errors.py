"""Errors a user can act on.

A :class:`UserError` is printed by the CLI as one line (no traceback) and exits with code 2.
It always names the file (or setting) at fault and the cause.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with the user's input, files or settings, reported as one line.

    Args:
        cause: what is wrong, in plain words.
        path: the file or directory at fault, if any; it is put in front of the message.
    """

    exit_code = 2

    def __init__(self, cause: str, path: str | Path | None = None) -> None:
        self.cause = cause
        self.path = None if path is None else Path(path)
        super().__init__(f"{self.path}: {cause}" if self.path is not None else cause)


class AudioReadError(UserError):
    """An input file is missing, unreadable, not audio, or holds unusable samples."""


class WeightsError(UserError):
    """Model weights are missing, corrupt or do not match the expected architecture."""


class ConfigError(UserError):
    """A setting (TOML key, CLI flag) is unknown or has a bad value; the message names the key."""
