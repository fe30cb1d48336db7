"""The demo installation: sample data and a ready-to-run configuration."""
