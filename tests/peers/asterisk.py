"""Fixtures for the asterisk peer (filled in by its harness)."""
