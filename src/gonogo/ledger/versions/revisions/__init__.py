"""Revision scripts of the ledger schema, oldest first (see gonogo.ledger.versions)."""
