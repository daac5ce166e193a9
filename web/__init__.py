"""Faust web views: parse, call, reply; errors map to HTTP in web/middleware.py."""
