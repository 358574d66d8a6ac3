"""Canonical JSON and content hashes: the one way anything here turns content into a name.

Run keys, cache keys and grouping keys all hash the same canonical text, so equal content always gives an
equal name, whatever the YAML order or the Python dict order it came from.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace; NaN is refused (it has no JSON form and never equals itself)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def content_key(payload: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of `payload`."""
    return sha256_hex(canonical_json(payload))
