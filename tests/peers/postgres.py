"""Fixtures for the postgres peer (filled in by its harness)."""
