"""CLI sub-commands of the foundation; each module has `register(subparsers)`."""
