"""Fixtures for the smtp peer (filled in by its harness)."""
