"""`tagbox sweep` (being written)."""


def register(subparsers) -> None:
    """Placeholder until the owning issue's module lands."""
