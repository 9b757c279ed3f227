"""`tagbox separate` (being written)."""


def register(subparsers) -> None:
    """Placeholder until the owning issue's module lands."""
