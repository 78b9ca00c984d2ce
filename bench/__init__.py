"""Benchmarks of Round Table: `python -m bench NAME` prints one JSON line of figures."""
