"""Runs one benchmark by name: `python -m bench finder`, `python -m bench fanout`."""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import fanout, finder

BENCHES: dict[str, Callable[[], int]] = {"finder": finder.main, "fanout": fanout.main}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in BENCHES:
        print(f"usage: python -m bench {{{','.join(sorted(BENCHES))}}}", file=sys.stderr)
        return 2
    return BENCHES[argv[1]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
