"""The reference methods, one module per family. Every public concrete method class here is registered by its
`name` (see :func:`phenomena_bench.registry.baseline_classes`); adding a baseline is adding a class."""
