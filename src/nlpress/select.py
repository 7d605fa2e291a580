"""Select modules or graph nodes by name: exact names or ``re:`` regular expressions.

One helper used by every method (STYLE.md, habit 7), as in llm-compressor recipes.
A pattern that matches nothing is an error: a typo must not silently select nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from nlpress.errors import NlpressError


def _matches(name: str, pattern: str) -> bool:
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return name == pattern


def match_names(
    names: Iterable[str], patterns: Sequence[str], *, what: str = "ignore"
) -> list[str]:
    """Names matched by any pattern; raises if a pattern matches none of ``names``."""
    names = list(names)
    for p in patterns:
        if p.startswith("re:"):
            try:
                re.compile(p[3:])
            except re.error as e:
                raise NlpressError(f"{what}: bad regular expression {p!r} ({e})") from e
        if not any(_matches(n, p) for n in names):
            raise NlpressError(
                f"{what}: pattern {p!r} matches no layer; check the name (e.g. 're:.*attention.*')"
            )
    return [n for n in names if any(_matches(n, p) for p in patterns)]


def select(names: Iterable[str], targets: Sequence[str] | None, ignore: Sequence[str]) -> list[str]:
    """``targets`` (all when None) minus ``ignore``."""
    names = list(names)
    chosen = names if targets is None else match_names(names, targets, what="targets")
    dropped = set(match_names(names, ignore)) if ignore else set()
    return [n for n in chosen if n not in dropped]
