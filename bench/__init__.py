"""Benchmarks of Round Table: `python -m bench NAME` prints one JSON line of figures."""


class BenchError(Exception):
    """The benchmark could not finish; the message says where it stopped."""
