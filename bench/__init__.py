"""Benchmarks of freetickets_nb: `python -m bench` runs them all (see `bench/__main__.py`)."""
