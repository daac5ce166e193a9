"""Benchmarks of flts-streams (`flts bench`), separate from tests and from the runtime package.

Each compares against a baseline measured in the same run and records results in docs/BENCHMARKS.md.
Nothing in flts_streams imports this package except the `flts bench` command, when it runs.
"""
