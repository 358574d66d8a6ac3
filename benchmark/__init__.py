"""phenomena-bench: a declarative benchmark suite for deep-learning phenomena."""

__version__ = "0.1.0"
