"""The pure core: canonical JSON, identifiers, keys, signatures, the Merkle tree, signed notes,
statements, tokens and the registry's rules. No database, no files."""
