"""Benchmarks (separate from tests): each compares against a baseline measured in the same run."""
