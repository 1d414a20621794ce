"""Providers: where releases go. A protocol plus an explicit registry, no plugin magic."""
