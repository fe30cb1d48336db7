"""Fixtures for the smsc peer (filled in by its harness)."""
