"""Request handlers, one module per area; each calls services only."""
