"""Where the pipeline's own log lines go when it runs as a flow."""

from __future__ import annotations

import logging


def log_to_stderr() -> None:
    """Show the pipeline's INFO messages (files taken, moved, quarantined) on stderr."""
    logger = logging.getLogger("tagbox_pipeline")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | tagbox - %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
