"""Contact import from CSV/XLSX: read (encodings, delimiters), map columns, validate, write."""
