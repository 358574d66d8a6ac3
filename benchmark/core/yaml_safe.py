"""Bounded YAML loading: a small file must stay a small object, and every failure names its line.

``yaml.safe_load`` is safe against code execution, not against size: aliases make a 2 KB file describe
gigabytes once anything walks it (the "billion laughs"), deep nesting makes the recursive composer raise
RecursionError, and a duplicate key silently keeps the last value. The loader here refuses all of that
while it reads, before any validation or tier resolution sees the data:

- **aliases** (``*name``) are an error (task specs and manifests never need them; anchors alone are inert);
- **nesting** deeper than :data:`MAX_DEPTH` is an error, checked before the composer recurses;
- **duplicate keys** in a mapping are an error naming both lines;
- the file itself may be at most :data:`MAX_BYTES` long (checked by :func:`read_bounded`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: Largest spec or manifest file read (the shipped specs are a few KB).
MAX_BYTES = 512 * 1024
#: Deepest nesting of mappings and lists (the shipped specs nest four levels).
MAX_DEPTH = 32


class YamlLimitError(yaml.YAMLError):
    """The document breaks one of the loader's limits; carries a one-line `problem` and its `problem_mark`."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader without aliases, with a depth limit and with duplicate keys refused."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise YamlLimitError(
                f"alias *{event.anchor} is not allowed (write the value out; aliases can expand a small file "
                "into gigabytes)",
                event.start_mark,
            )
        nests = isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent)
        if nests:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            if nests:
                self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: let the base class report it
                break
            if first is not None:
                raise YamlLimitError(
                    f"duplicate key {str(key)[:60]!r} (also on line {first.line + 1}; a mapping names each key once)",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def load_bounded(text: str) -> Any:
    """Parse one YAML document under the limits above; errors are :class:`yaml.YAMLError` with a mark."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_bounded(path: Path) -> bytes:
    """The file's bytes, refusing one larger than :data:`MAX_BYTES` without reading it whole."""
    with path.open("rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise YamlLimitError(f"file is larger than {MAX_BYTES // 1024} KiB", None)
    return data
