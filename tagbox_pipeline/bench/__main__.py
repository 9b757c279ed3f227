"""``python -m tagbox_pipeline.bench NAME|all``: run one bench module's ``main()`` or all of them."""

from __future__ import annotations

import importlib
import sys

BENCHES = ["taggers", "separation", "quality", "detection", "ablation", "speed", "faults", "jukebox"]


def run(names: list[str]) -> int:
    """Run the named benches in order; returns a process exit code."""
    for name in names:
        if name not in BENCHES:
            print(f"unknown bench '{name}'; choose from {', '.join(BENCHES)} or 'all'", file=sys.stderr)
            return 2
        importlib.import_module(f"{__package__}.{name}").main()
    return 0


if __name__ == "__main__":
    args = sys.argv[1:] or ["all"]
    sys.exit(run(BENCHES if args == ["all"] else args))
