"""The framework core: spec base models, the Family and Method bases, hashing, seeds, atomic I/O, caches and
curves. It imports no family."""
