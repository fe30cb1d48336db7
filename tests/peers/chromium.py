"""Fixtures for the chromium peer (filled in by its harness)."""
