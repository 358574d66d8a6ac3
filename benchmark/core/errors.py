"""Errors a user can act on.

Every error the command line shows without a traceback derives from :class:`BenchmarkError`: its message
is a complete sentence that names what went wrong and where (file, field, method), so the CLI can print
it on one line and exit non-zero. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class BenchmarkError(Exception):
    """A problem with the user's input (spec, method, arguments, store) rather than a bug."""


class SpecError(BenchmarkError):
    """A task spec or submission manifest failed validation; carries every problem found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


class MethodError(BenchmarkError):
    """A method could not be resolved, or does not implement its family's protocol."""


class StoreError(BenchmarkError):
    """The results store holds something that cannot be trusted (a torn or foreign record)."""
