"""Sources of replayed history: builtin datasets that ship in packages, and plain files."""
