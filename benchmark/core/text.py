"""Text from untrusted sources (method names, errors, spec values) made safe to print on a terminal.

A method's name or exception message is chosen by whoever wrote it; printed raw, an escape sequence could
rewrite the terminal, hide a line or forge a status. Everything the CLI prints that did not come from the
harness itself goes through :func:`printable`.
"""

from __future__ import annotations

import re

# ANSI CSI / OSC / other ESC sequences first (so their parameters go too), then any other control character
# except newline and tab (C0, DEL, C1).
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` without terminal escape sequences and control characters (newlines and tabs are kept)."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text))
