"""Bounded readers for user files: JSON, YAML and what error messages quote from them.

Every file a user hands nlpress (config.json, nlpress.json, modules.json, a recipe, a data
file) can be damaged or hostile. One set of readers, used everywhere, turns each way such a file
can fail into one :class:`~nlpress.errors.NlpressError` line, and bounds what it can make
nlpress allocate:

* files above a size limit are refused before they are read;
* JSON nested deeper than Python's recursion limit raises ``RecursionError`` in ``json``;
  it is caught here, so a 200,000-deep ``[[[...]]]`` is an error message, not a traceback;
* YAML is composed into its node graph first (anchors stay shared there, so this is cheap even for
  an alias bomb), the size the graph would expand to is counted, and only a graph below the limits
  is turned into Python objects. "Billion laughs" (nested ``&a [*b, *b, ...]``) needs
  exponentially many objects and is refused in milliseconds;
* :func:`short` cuts what a message quotes from such a file, so an error never prints megabytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nlpress.errors import NlpressError

MAX_JSON_BYTES = 64 * 1024**2  # tokenizer.json of a 250k-word vocabulary is ~20 MB
MAX_YAML_BYTES = 1024**2  # a recipe is a few hundred bytes
MAX_YAML_NODES = 100_000  # scalars + containers after alias expansion
MAX_YAML_DEPTH = 64


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, computed without building a huge string."""
    if isinstance(value, (dict, list, tuple, set)) and _too_big(value, limit):
        kind = type(value).__name__
        return f"<a {kind} of {len(value)} items>"
    text = (
        repr(value)
        if not isinstance(value, str) or len(value) <= 4 * limit
        else repr(value[: 4 * limit])
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _too_big(value, limit: int, budget: list | None = None) -> bool:
    """True when a container holds more than about ``limit`` items in all (shared ones counted)."""
    budget = budget if budget is not None else [limit]
    stack = [value]
    while stack:
        v = stack.pop()
        budget[0] -= 1
        if budget[0] < 0:
            return True
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple, set)):
            stack.extend(v)
        elif isinstance(v, str) and len(v) > limit:
            return True
    return False


def one_line(text: str, limit: int = 1000) -> str:
    """Whitespace (newlines too) collapsed, cut to ``limit`` characters: one terminal line."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_json(path: Path, what: str, fix: str, *, kind: type | None = dict) -> Any:
    """The JSON value in ``path``; any way the file can be wrong is one error naming ``fix``.

    ``kind`` (dict by default) is the type the top-level value must have; None accepts any.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise NlpressError(
                f"{what} {path} is {size / 1e6:.0f} MB, larger than nlpress reads "
                f"({MAX_JSON_BYTES // 1024**2} MB); {fix}"
            )
        value = parse_json(path.read_bytes().decode("utf-8-sig"))
    except NlpressError as e:
        if str(e).startswith(f"{what} {path}"):
            raise
        raise NlpressError(f"{what} {path} is not valid JSON ({e}); {fix}") from e
    except UnicodeDecodeError as e:
        raise NlpressError(f"{what} {path} is not UTF-8 text ({e.reason}); {fix}") from e
    except OSError as e:
        raise NlpressError(f"cannot read {what} {path} ({e.strerror}); {fix}") from e
    if kind is not None and not isinstance(value, kind):
        want = {dict: "an object {...}", list: "a list [...]"}.get(kind, kind.__name__)
        raise NlpressError(
            f"{what} {path} holds {type(value).__name__} {short(value, 40)}, not {want}; {fix}"
        )
    return value


def parse_json(text: str) -> Any:
    """``json.loads`` whose every failure (nesting too deep included) is an NlpressError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise NlpressError(f"{e.msg} at line {e.lineno} column {e.colno}") from e
    except RecursionError as e:
        raise NlpressError("nested too deeply") from e


def load_yaml(text: str, what: str) -> Any:
    """``yaml.safe_load`` with the size, alias-expansion and depth bounds of this module."""
    import yaml

    if len(text) > MAX_YAML_BYTES:
        raise NlpressError(
            f"{what} is {len(text) / 1e6:.1f} MB, larger than a recipe can be "
            f"({MAX_YAML_BYTES // 1024**2} MB); shorten it"
        )
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None
        _check_nodes(node, what)
        return yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 (SafeLoader)
    except yaml.YAMLError as e:
        problem, mark = getattr(e, "problem", None), getattr(e, "problem_mark", None)
        reason = f"{problem} at line {mark.line + 1}" if problem and mark else str(e)
        raise NlpressError(f"{what} is not valid YAML: {one_line(reason, 200)}") from e
    except RecursionError as e:
        raise NlpressError(f"{what} is nested too deeply; flatten it") from e


def _check_nodes(root, what: str) -> None:
    """Count the nodes the graph expands to (aliases followed) and its depth; refuse big ones."""
    import yaml

    sizes: dict[int, int] = {}  # id(node) -> expanded size, so shared anchors are counted once

    def size(node, depth: int, path: tuple) -> int:
        if depth > MAX_YAML_DEPTH:
            raise NlpressError(
                f"{what} is nested more than {MAX_YAML_DEPTH} levels deep; flatten it"
            )
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in path:
            raise NlpressError(f"{what} has an anchor that refers to itself; remove the loop")
        if isinstance(node, yaml.ScalarNode):
            total = 1
        else:
            children = (
                [c for kv in node.value for c in kv]
                if isinstance(node, yaml.MappingNode)
                else node.value
            )
            total = 1
            for c in children:
                total += size(c, depth + 1, (*path, key))
                if total > MAX_YAML_NODES:
                    break
        if total > MAX_YAML_NODES:
            raise NlpressError(
                f"{what} expands to more than {MAX_YAML_NODES:,} values (nested anchors/aliases); "
                "write it out plainly"
            )
        sizes[key] = total
        return total

    size(root, 0, ())
