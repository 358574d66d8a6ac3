"""The base of every method: a name, a version and typed hyperparameters.

A method subclasses its family's base (``phenomena_bench.families.<family>.api``), parameterised by its
hyperparameter model, and implements that base's abstract hooks::

    class Lion(GrokkingMethod[LionHyperparameters]):
        name = "lion"
        version = "1"

        def configure(self, model, params, info): ...   # self.hp is a LionHyperparameters

Its *identity* (name, family, version, every hyperparameter value with defaults included, the installed
distribution that provides it and a digest of its code) is recorded with every run and enters the run key,
so changing a default can never keep serving an old result, and a different class that happens to carry the
same name and version is never credited with another's stored results (:func:`code_digest`).

Hyperparameters are strict whatever model the submitter wrote: a plain ``BaseModel`` (which pydantic lets
ignore unknown keys) is checked against its fields here, and a misspelt key (``--hp lrr=1e-3``) is an error
that names the closest field rather than a run served under the defaults.

Everything a hook returns is checked by the harness before it counts (:func:`checked_count`,
:func:`checked_real`, :func:`checked_flops`): a value of the wrong type or outside its domain (a negative
step count, NaN FLOPs) fails the run with a :class:`MethodError` naming the hook and the value, rather than
being recorded as a forged score.
"""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
import math
import numbers
import sys
import textwrap
from abc import ABC
from importlib import metadata
from typing import Any, ClassVar, Generic, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from phenomena_bench.core.claims import Claim
from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.hashing import sha256_hex
from phenomena_bench.core.text import printable


class NoHyperparameters(BaseModel):
    """The hyperparameters of a method that has none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


HP = TypeVar("HP", bound=BaseModel)


class Method(ABC, Generic[HP]):
    """Base of every method. Subclass a family's method base, set the class attributes, implement its hooks."""

    name: ClassVar[str]
    family: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    #: The hyperparameter model; taken from the generic argument (``Base[MyHP]``) when not set explicitly.
    Hyperparameters: ClassVar[type[BaseModel]] = NoHyperparameters
    #: The effects the method's paper reports (checked by ``analysis.fidelity``); a declaration, not behaviour,
    #: so it is left out of the code digest (:data:`DECLARATIONS`).
    claims: ClassVar[tuple[Claim, ...]] = ()

    hp: HP

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Hyperparameters" in cls.__dict__:
            return
        for base in getattr(cls, "__orig_bases__", ()):
            args = get_args(base)
            if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
                cls.Hyperparameters = args[0]
                return

    def __init__(self, **hyperparameters: Any) -> None:
        model = self.Hyperparameters
        known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
        unknown = sorted(set(hyperparameters) - known)
        if unknown:
            raise MethodError(f"method {self.name!r}: {unknown_keys_message(unknown, sorted(known))}")
        try:
            self.hp = model(**hyperparameters)  # type: ignore[assignment]
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<all>'}: {e['msg']}" for e in err.errors(include_url=False)
            )
            raise MethodError(f"method {self.name!r}: invalid hyperparameters: {problems}") from None

    def identity(self) -> dict[str, Any]:
        """What names this method in a run key: name, family, version, every hyperparameter value, the
        distribution that provides the class (name and version, ``None`` when not installed) and
        :func:`code_digest` of its class."""
        cls = type(self)
        dist = distribution_of(cls)
        return {
            "name": self.name,
            "family": self.family,
            "version": str(self.version),
            "hyperparameters": self.hp.model_dump(mode="json"),
            "distribution": dist.name if dist else None,
            "distribution_version": dist.version if dist else None,
            "code": code_digest(cls),
        }

    def label(self) -> str:
        """The name shown in tables: the method name, plus any hyperparameter that differs from its default."""
        model = self.Hyperparameters
        has_defaults = all(not f.is_required() for f in model.model_fields.values())
        defaults = model().model_dump(mode="json") if has_defaults else {}
        changed = {k: v for k, v in self.hp.model_dump(mode="json").items() if defaults.get(k, object()) != v}
        if not changed:
            return self.name
        return self.name + "[" + ",".join(f"{k}={v}" for k, v in sorted(changed.items())) + "]"


def unknown_keys_message(unknown: list[str], allowed: list[str]) -> str:
    """One line for misspelt hyperparameters: each unknown key with its closest field, and the fields."""
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        if close:
            hints.append(f"{close[0]} for {key}")
    hint = f"; did you mean {', '.join(hints)}?" if hints else ""
    return f"unknown hyperparameter(s) {', '.join(unknown)} (allowed: {', '.join(allowed) or 'none'}){hint}"


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    """`tree` without the docstrings of its module, classes and functions (prose is not behaviour)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


#: Class attributes that declare something about a method without changing what it does (its paper's
#: claims): left out of the code digest, so declaring one keeps every stored result.
DECLARATIONS = frozenset({"claims"})


def _declared_name(node: ast.stmt) -> str | None:
    """The attribute a class-body statement assigns (``claims = ...``, ``claims: T = ...``), else None."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def _strip_declarations(tree: ast.AST) -> ast.AST:
    """`tree` without the class-body assignments of :data:`DECLARATIONS`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            node.body = [s for s in node.body if _declared_name(s) not in DECLARATIONS] or [ast.Pass()]
    return tree


def _class_code(cls: type) -> str:
    """The code of one class as a normalised AST dump (comments, docstrings, layout and declarations left
    out)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        return ast.dump(_strip_declarations(_strip_docstrings(ast.parse(source))))
    except (OSError, TypeError, SyntaxError):  # no source (built in a REPL, a zip without .py): its bytecode
        items = (kv for kv in vars(cls).items() if kv[0] not in DECLARATIONS)
        return repr(sorted((k, getattr(v, "__code__", None) and v.__code__.co_code) for k, v in items))


def _is_harness_class(cls: type) -> bool:
    """A class of the harness (a family's method base, :class:`Method`): versioned by the task, not hashed."""
    return cls.__module__.startswith(("phenomena_bench.core.", "phenomena_bench.families."))


@functools.cache
def code_digest(cls: type) -> str:
    """SHA-256 of the code of `cls` and of each base class it inherits from, up to its family's base.

    Docstrings, comments and formatting do not count, nor where the module lives, so editing prose or moving
    a file keeps every stored result; any change to a statement makes the key new. Code outside the classes
    (a helper function, an optimizer class the method instantiates) is covered by the method's ``version``
    and its distribution's version, which the identity also carries.
    """
    parts = [_class_code(c) for c in cls.__mro__ if issubclass(c, Method) and not _is_harness_class(c)]
    return sha256_hex("\n".join(parts))


@functools.cache
def _distributions_by_module() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


@functools.cache
def distribution_of(cls: type) -> metadata.Distribution | None:
    """The installed distribution whose files hold `cls` (None for code put on ``sys.path`` uninstalled).

    Matched by the top-level module name, then confirmed by the distribution's file list (or its editable
    install's path), so a folder on ``sys.path`` that shadows an installed package is not credited to it.
    """
    top = cls.__module__.split(".")[0]
    module = sys.modules.get(cls.__module__)
    where = getattr(module, "__file__", None)
    for name in _distributions_by_module().get(top, []):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if where is None or _holds(dist, where):
            return dist
    return None


def _holds(dist: metadata.Distribution, path: str) -> bool:
    from pathlib import Path

    target = Path(path).resolve()
    for file in dist.files or []:
        located = Path(str(dist.locate_file(file)))
        if located.suffix == ".pth":  # an editable install: a .pth naming the source folder(s)
            try:
                folders = [line.strip() for line in located.read_text().splitlines() if line.strip()]
            except OSError:
                continue
            if any(target.is_relative_to(Path(f).resolve()) for f in folders if not f.startswith("import ")):
                return True
        elif located.resolve() == target:
            return True
    return _editable_finder_holds(dist, target)


def _editable_finder_holds(dist: metadata.Distribution, target: Any) -> bool:
    """A setuptools editable install maps packages to folders in a generated finder module."""
    from pathlib import Path

    for file in dist.files or []:
        if str(file).startswith("__editable__") and str(file).endswith("_finder.py"):
            text = Path(str(dist.locate_file(file))).read_text(errors="replace")
            start = text.find("MAPPING")
            if start < 0:
                continue
            try:
                mapping = ast.literal_eval(text[text.index("=", start) + 1 : text.index("}", start) + 1].strip())
            except (ValueError, SyntaxError):
                continue
            if any(target.is_relative_to(Path(folder).resolve()) for folder in mapping.values()):
                return True
    return False


def shown(value: object, limit: int = 60) -> str:
    """`value` as an error message shows it: its repr, printable, cut to `limit` characters."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not turn a clear MethodError into a crash
        text = f"<{type(value).__name__}>"
    text = printable(text).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def bad_output(method: str, hook: str, value: object, expected: str) -> MethodError:
    """The error for a hook that returned `value` where `expected` was due (one line, names both)."""
    return MethodError(f"method {method!r}: {hook} returned {shown(value)}; expected {expected}")


def checked_count(value: object, method: str, hook: str, low: int, high: int) -> int:
    """`value` as an int in ``low..high`` (a step count, a budget): an int, or a MethodError naming it.

    Only integers count (``bool`` and ``3.0`` are refused): a count the harness would have to round is a
    bug in the method, and rounding NaN or infinity would crash the harness instead.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise bad_output(method, hook, value, f"an int in {low}..{high}")
    number = int(value)
    if not low <= number <= high:
        raise bad_output(method, hook, value, f"an int in {low}..{high}")
    return number


def checked_real(
    value: object, method: str, hook: str, low: float = -math.inf, high: float = math.inf, what: str = "a number"
) -> float:
    """`value` as a finite float in ``[low, high]``, or a MethodError naming the hook and the value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise bad_output(method, hook, value, f"{what} (a finite real in [{low}, {high}])")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise bad_output(method, hook, value, f"{what} (a finite real in [{low}, {high}])")
    return number


def checked_flops(value: object, method: str, hook: str) -> float:
    """A declared FLOP count: finite and >= 0."""
    return checked_real(value, method, hook, 0.0, math.inf, what="a FLOP count")
