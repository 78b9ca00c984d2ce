"""Runs one benchmark by name: `python -m bench finder`, `python -m bench fanout`,
`python -m bench http [--rtt-ms R] [--calls N] [--concurrency C]`,
`python -m bench load [--people N] [--think S] [--rtt-ms R] [--updates U] [--database-url URL]`,
`python -m bench chaos [--people N] [--kills K] [--fault-rate R] [--outages O] [--seed S]
[--database-url URL]`,
`python -m bench mail [--mails N] [--per-second R] [--concurrency C]`."""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import chaos, fanout, finder, http, load, mail

# Each takes the arguments after its name; finder and fanout take none.
BENCHES: dict[str, Callable[[list[str]], int]] = {
    "finder": lambda _arguments: finder.main(),
    "fanout": lambda _arguments: fanout.main(),
    "http": http.main,
    "load": load.main,
    "chaos": chaos.main,
    "mail": mail.main,
}
TAKES_OPTIONS = {"http", "load", "chaos", "mail"}


def main(argv: list[str]) -> int:
    name = argv[1] if len(argv) > 1 else ""
    if name not in BENCHES or (len(argv) > 2 and name not in TAKES_OPTIONS):
        print(f"usage: python -m bench {{{','.join(sorted(BENCHES))}}} [options]", file=sys.stderr)
        return 2
    return BENCHES[name](argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
