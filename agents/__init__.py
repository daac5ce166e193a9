"""Faust agents: decode, call flts_streams code, write tables, send."""
