"""The JSON API under /api/v1: declared once in contactd/web/api/spec.py style."""
