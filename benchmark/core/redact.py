"""Secrets and local paths kept out of anything written down: records, published datasets, messages.

A method's exception message and traceback end up in its run record, and run records are published. A
method that read a token (from a file it can open as your user, say) and raised with it would publish it;
every traceback names absolute paths of the machine it ran on (home folder, checkout, site-packages, the
store). :func:`redact` replaces

- **known secret values**: the values of credential-looking environment variables this process saw (the
  CLI remembers them with :func:`remember_secrets` before it drops them), the Hub token files of this user,
  and anything shaped like a Hub token (``hf_`` and 30+ letters or digits) whatever its source;
- **local absolute paths**: the store, the checkout (or installed package), site-packages, the Python
  prefix, the working directory and the home folder, longest first, each by a placeholder such as
  ``<repo>`` or ``~``.

It is one helper so that every place that writes text meant for others (``Store.put``, ``publish``) treats
it the same way. The names that count as secrets are defined here too (:func:`is_secret`), for the code
that keeps them out of worker processes.
"""

from __future__ import annotations

import os
import re
import site
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from pathlib import Path

REDACTED = "<redacted>"

#: Environment variables that are secrets by name: the Hub's tokens first, then other common credentials.
SECRET_NAMES = frozenset(
    {
        "HF_TOKEN",
        "HF_HUB_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HUGGINGFACE_TOKEN",
        "HUGGINGFACE_HUB_TOKEN",
        "HF_API_TOKEN",
        "HUGGINGFACEHUB_API_TOKEN",
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "WANDB_API_KEY",
    }
)
#: Any variable whose name looks like a credential is treated as one.
SECRET_PATTERN = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|ACCESS_KEY|PRIVATE_KEY", re.IGNORECASE)
#: The shape of a Hugging Face access token: redacted wherever it appears, known or not.
HUB_TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
#: Shorter values are not treated as secrets (replacing "1" or "yes" everywhere would garble the text).
MIN_SECRET_LEN = 8

_remembered: set[str] = set()


def is_secret(name: str) -> bool:
    """Whether an environment variable of this name holds a credential (by name or by its look)."""
    return name in SECRET_NAMES or bool(SECRET_PATTERN.search(name))


def secret_names(env: Mapping[str, str]) -> list[str]:
    return sorted(name for name in env if is_secret(name))


def remember_secrets(values: Iterable[str]) -> None:
    """Keep these values to redact later (the CLI calls this before it removes them from the environment)."""
    _remembered.update(v for v in values if len(v) >= MIN_SECRET_LEN)


def hub_token_files() -> list[Path]:
    """Where huggingface_hub keeps this user's tokens (``HF_TOKEN_PATH``, ``$HF_HOME``, the default cache)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    home = Path(os.environ.get("HF_HOME") or cache / "huggingface")
    candidates = [os.environ.get("HF_TOKEN_PATH"), home / "token", home / "stored_tokens"]
    return [Path(c) for c in candidates if c]


def _file_secrets(path: Path) -> set[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:100_000]
    except OSError:
        return set()
    found = set(HUB_TOKEN_SHAPE.findall(text))
    if path.name == "token" and text.strip():
        found.add(text.strip())
    for line in text.splitlines():  # stored_tokens is INI: `hf_token = ...`
        name, sep, value = line.partition("=")
        if sep and "token" in name.lower() and value.strip():
            found.add(value.strip())
    return {s for s in found if len(s) >= MIN_SECRET_LEN}


def known_secrets() -> set[str]:
    """Every secret value this process can know: remembered, still in the environment, or in token files."""
    values = set(_remembered)
    values.update(v for k, v in os.environ.items() if is_secret(k) and len(v) >= MIN_SECRET_LEN)
    for path in hub_token_files():
        values |= _file_secrets(path)
    return values


def _package_root() -> Path:
    """The checkout (editable install) or the folder the package is installed in."""
    return Path(__file__).resolve().parents[2]


def local_paths(extra: Iterable[tuple[str | Path, str]] = ()) -> list[tuple[str, str]]:
    """(absolute path, placeholder) pairs to hide, the caller's (e.g. the store) first, then the machine's."""
    pairs: list[tuple[Path, str]] = [(Path(p), label) for p, label in extra]
    for name in ("purelib", "platlib"):
        pairs.append((Path(sysconfig.get_paths()[name]), "<site-packages>"))
    for folder in [*getattr(site, "getsitepackages", list)(), site.getusersitepackages()]:
        pairs.append((Path(folder), "<site-packages>"))
    root = _package_root()
    pairs.append((root, "<site-packages>" if root.name in ("site-packages", "dist-packages") else "<repo>"))
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        pairs.append((Path(prefix), "<python>"))
    pairs.append((Path.cwd(), "<cwd>"))
    pairs.append((Path.home(), "~"))
    out: dict[str, str] = {}
    for path, label in pairs:
        for form in {str(path), _resolved(path)}:
            if form and Path(form).is_absolute() and len(Path(form).parts) > 1 and form not in out:
                out[form] = label
    return sorted(out.items(), key=lambda item: -len(item[0]))


def _resolved(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return str(path)


class Redactor:
    """:func:`redact` with its secrets and paths gathered once, for redacting many strings in a row."""

    def __init__(self, extra_paths: Iterable[tuple[str | Path, str]] = ()) -> None:
        self.secrets = sorted(known_secrets(), key=len, reverse=True)
        paths = local_paths(extra_paths)
        self.labels = dict(paths)
        # a path counts only as a whole path component: not inside a longer name, nor a later part of another
        self.pattern = re.compile(
            r"(?<![\w./\-])(" + "|".join(re.escape(p) for p, _ in paths) + r")(?=$|[/\\\s'\"`),:;\]>}])",
            re.MULTILINE,
        )

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        text = HUB_TOKEN_SHAPE.sub(REDACTED, text)
        return self.pattern.sub(lambda m: self.labels[m.group(1)], text) if self.labels else text


def redact(text: str, extra_paths: Iterable[tuple[str | Path, str]] = ()) -> str:
    """`text` with every known secret replaced by ``<redacted>`` and local absolute paths by placeholders."""
    return Redactor(extra_paths)(text) if text else text
