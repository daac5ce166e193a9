"""Faust table declarations (their names are topic names: never rename)."""
