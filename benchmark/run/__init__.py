"""Planning runs (run keys), executing them in isolated workers, and orchestrating a plan against a store."""
