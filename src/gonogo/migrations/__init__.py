"""Migrations: explicit, recorded, never a side effect of deploying."""
