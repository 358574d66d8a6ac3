"""The submission guide of a family, generated from its protocol module (``families/<family>/api.py``).

The guide is built from what the harness itself uses, so it cannot drift from it: the module's docstring
(what the harness owns and checks), the method base's hooks as :func:`~phenomena_bench.registry.family_hooks`
finds them (signature, required or optional, docstring), the public types the module hands a method, the
family's scored columns and reference method, each shipped task's budgets per tier, and the family's
complete minimal example (:mod:`phenomena_bench.report.examples`, which the tests install and run).
``phenomena-bench docs FAMILY`` prints it; the leaderboard site renders it as ``guide/<family>.html``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from phenomena_bench.core.spec import TaskSpec

_ROLE = re.compile(r":(?:class|meth|func|mod|data|attr|exc):`~?([^`]+)`")


def _doc(obj: object) -> str:
    """A docstring as Markdown: reST roles and double backquotes become plain `code`, ``::`` a colon."""
    text = inspect.cleandoc(obj.__doc__ or "").strip()
    text = _ROLE.sub(r"`\1`", text)
    return text.replace("``", "`").replace("::\n", ":\n")


def _protocol_module(family: str) -> Any:
    return importlib.import_module(f"phenomena_bench.families.{family}.api")


def _hook_section(base: type, name: str, signature: inspect.Signature, func: Any) -> list[str]:
    required = name in getattr(base, "__abstractmethods__", ())
    shown = str(signature).replace("'", "")
    return [
        f"### `{name}{shown}` ({'required' if required else 'optional'})",
        "",
        _doc(func) or "(no docstring)",
        "",
    ]


def _type_section(obj: type) -> list[str]:
    lines = [f"### `{obj.__name__}`", "", _doc(obj) or "(no docstring)", ""]
    if dataclasses.is_dataclass(obj):
        try:
            hints = typing.get_type_hints(obj)
        except Exception:  # an annotation that does not resolve here: show the raw one
            hints = {}
        for field in dataclasses.fields(obj):
            kind = hints.get(field.name, field.type)
            lines.append(f"- `{field.name}`: `{getattr(kind, '__name__', None) or kind}`")
        lines.append("")
    for name, member in vars(obj).items():
        if not name.startswith("_") and inspect.isfunction(member) and not dataclasses.is_dataclass(obj):
            lines.append(
                f"- `{name}{inspect.signature(member)}`: {_doc(member).splitlines()[0] if _doc(member) else ''}"
            )
    if lines[-1] != "":
        lines.append("")
    return lines


def _public_types(module: Any, base: type) -> Iterable[type]:
    """The classes the protocol module defines and exports (what the harness hands a method), base excepted."""
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name, None)
        if inspect.isclass(obj) and obj is not base and obj.__module__ == module.__name__:
            yield obj


def _budget_lines(specs: Iterable[TaskSpec]) -> list[str]:
    lines = ["| task | tier | seeds | time limit (s) | budgets |", "| --- | --- | --- | --- | --- |"]
    for spec in sorted(specs, key=lambda s: s.id):
        for tier in ("smoke", "default", "full"):
            resolved = spec.resolve(tier)
            budgets = ", ".join(f"{k}={v}" for k, v in _budget_fields(resolved.model_dump(mode="json")))
            lines.append(f"| {spec.id} | {tier} | {resolved.seeds} | {resolved.time_limit_s:g} | {budgets} |")
    return lines


def _budget_fields(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Every field of a resolved spec that bounds what a method may spend (steps, epochs, budgets)."""
    found: list[tuple[str, Any]] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found += _budget_fields(value, path + ".")
        elif any(word in key for word in ("budget", "steps", "epochs")) and key != "time_limit_s":
            found.append((path, value))
    return found


def family_guide(family: str, specs: Iterable[TaskSpec] = ()) -> str:
    """The Markdown submission guide of `family` (`specs`: its task specs, for the budgets table)."""
    from phenomena_bench.analysis.comparison import MIN_PAIRED_SEEDS
    from phenomena_bench.registry import family_hooks, get_family
    from phenomena_bench.report.examples import example_class, example_source

    fam = get_family(family)
    base = fam.method_base
    module = _protocol_module(family)
    lines = [f"# Submitting a {family} method", "", _doc(fam) or fam.description, ""]
    lines += ["## The protocol", "", _doc(module), ""]
    lines += [
        f"## The method base: `{base.__module__}.{base.__qualname__}`",
        "",
        _doc(base),
        "",
        "Set `name` (not a baseline's: see `phenomena-bench methods`), `version` (bump it whenever results could "
        "change) and optionally `description`. Hyperparameters are a pydantic model given as the generic argument "
        f"(`{base.__name__}[MyHyperparameters]`): `self.hp` is an instance of it, built from its defaults and the "
        "`--hp KEY=VALUE` overrides. Every field needs a default; an unknown key is an error naming the closest "
        "field, whatever the model's own `extra` setting. The run key holds every value (defaults included), "
        "the method's name and version, the distribution that installed it and a digest of its class's code "
        "(docstrings left out), so a different implementation under the same name never reuses stored results.",
        "",
        "## Hooks",
        "",
    ]
    for name, signature in family_hooks(base).items():
        owner = next(k for k in base.__mro__ if name in vars(k))
        lines += _hook_section(base, name, signature, vars(owner)[name])
    types = list(_public_types(module, base))
    if types:
        lines += ["## What the harness hands you and expects back", ""]
        for obj in types:
            lines += _type_section(obj)
    lines += ["## What is scored", ""]
    direction = "lower" if fam.direction == "min" else "higher"
    lines += [
        f"Methods are ranked by `{fam.primary_metric}` ({direction} is better) and compared seed by seed with "
        f"the reference method `{fam.reference_method}` (a paired sign-flip test, Holm-adjusted over the "
        "table's methods). The smallest attainable p-value with n paired seeds is 2/2^n and Holm's first step "
        f"needs p < 0.05/m for m methods, so a verdict needs at least {MIN_PAIRED_SEEDS} paired seeds for one "
        "method, 8 for five, 9 for seven or eight; with fewer the `vs ref` column says `underpowered`. The "
        "columns:",
        "",
    ]
    lines += [f"- {c.header}: `{c.metric}` ({c.kind})" for c in fam.columns()]
    specs = list(specs)
    if specs:
        lines += ["", "## Budgets per task and tier", "", *_budget_lines(specs)]
    source = example_source(family)
    if source is not None:
        lines += [
            "",
            "## A complete minimal example",
            "",
            "The tests install this file as a package and run it on the smoke tier.",
            "",
            "```python",
            source.rstrip(),
            "```",
            "",
            "Run it without installing anything (the file saved as `my_method.py` in the current folder):",
            "",
            "```bash",
            f"phenomena-bench run --task {family} --tier smoke --seeds 1 --method my_method:{example_class(family)}",
            "```",
        ]
    lines += [
        "",
        "## Submitting",
        "",
        "Put the code in a package whose `pyproject.toml` declares the entry point "
        '`[project.entry-points."phenomena_bench.methods"]` as `NAME = "package.module:Class"` (NAME = the '
        "method's `name`), write `submissions/NAME/submission.yaml` (exactly one of `pip` and `local_package`) "
        "and run `phenomena-bench check-submission submissions/NAME`: it installs a `pip` requirement into a "
        "fresh virtual environment, checks the entry point's group and name as installed, every hook's "
        "signature, the hyperparameters and name clashes, then runs the smoke tier. Exit codes: "
        "`phenomena-bench --help`.",
        "",
    ]
    return "\n".join(lines)


def guide_html(markdown: str) -> str:
    """The guide's Markdown as HTML, escaped: headings, paragraphs, lists, tables, code blocks, ``code``.

    Only the constructs :func:`family_guide` writes are understood (the site has no Markdown dependency);
    every piece of text is escaped, so a docstring cannot inject markup into the page.
    """
    from markupsafe import escape

    def inline(text: str) -> str:
        pieces = text.split("`")
        return "".join(f"<code>{escape(p)}</code>" if i % 2 else str(escape(p)) for i, p in enumerate(pieces))

    out: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
            out.append(f"<pre><code>{escape(chr(10).join(lines[i + 1 : end]))}</code></pre>")
            i = end + 1
            continue
        if line.startswith("    ") and (i == 0 or not lines[i - 1].strip()):  # an indented code block
            block = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                block.append(lines[i][4:])
                i += 1
            out.append(f"<pre><code>{escape(chr(10).join(block).rstrip())}</code></pre>")
            continue
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.startswith("| "):
            rows = []
            while i < len(lines) and lines[i].startswith("| "):
                if not set(lines[i]) <= set("|- "):
                    rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            head, *body = rows
            out.append(
                "<table><thead><tr>"
                + "".join(f"<th>{inline(c)}</th>" for c in head)
                + "</tr></thead><tbody>"
                + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body)
                + "</tbody></table>"
            )
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line.strip():
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "```", "| ", "- ")):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{inline(' '.join(para))}</p>")
            continue
        i += 1
    return "\n".join(out)
