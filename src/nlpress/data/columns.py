"""Pick the text, pair, label and score columns of a table and convert them into :class:`TextData`.

Every reader (TSV, CSV, JSONL, Hugging Face ``datasets``) hands over the same thing: the column
names and one :class:`Record` per row. Detecting columns and converting values here, once, is what
makes GLUE files work without flags in every format and keeps one wording for each error. It
returns plain ``TextData`` fields, so this module does not depend on the readers.

Detection looks for common names, case-insensitively, in priority order (GLUE SST-2: ``sentence`` /
``label``; STS-B: ``sentence1`` / ``sentence2`` / ``score``; MRPC: ``#1 String`` / ``#2 String`` /
``Quality``). A label column whose values are non-integer numbers is read as similarity scores
(the Hugging Face copy of STS-B calls its score column ``label``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nlpress.errors import NlpressError
from nlpress.guards import short

# Integer labels are class ids 0..N-1, and a classifier gets one output per id up to the largest:
# a label of 10**9 would allocate a head of a billion rows. No real label set is near this.
MAX_CLASSES = 10_000

TEXT_NAMES = ("text", "sentence", "sentence1", "question", "question1", "premise", "#1 string")
PAIR_NAMES = ("text_pair", "sentence2", "question2", "hypothesis", "#2 string")
LABEL_NAMES = ("label", "labels", "quality", "gold_label")
SCORE_NAMES = ("score", "scores", "similarity")


@dataclass(frozen=True)
class Record:
    """One row: where it came from (``"line 5"``, for messages) and its raw values by column."""

    where: str
    values: dict[str, object]


def table_fields(
    header: list[str],
    records: list[Record],
    *,
    source: str,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
) -> dict[str, list | None]:
    """Detect (or check the named) columns and convert their values into ``TextData`` fields."""
    text_col = _named(header, text_column, "--text-column", source)
    text_col = text_col or _find(header, TEXT_NAMES, exclude=())
    if text_col is None:
        raise NlpressError(
            f"no text column found in {source} (columns: {', '.join(header)}); "
            "pass --text-column NAME"
        )
    pair_col = _named(header, text_pair_column, "--text-pair-column", source)
    pair_col = pair_col or _find(header, PAIR_NAMES, exclude=(text_col,))
    label_col = _named(header, label_column, "--label-column", source)
    label_col = label_col or _find(header, LABEL_NAMES, exclude=(text_col, pair_col))
    score_col = _find(header, SCORE_NAMES, exclude=(text_col, pair_col))
    if label_col is not None and (
        label_col.lower() in SCORE_NAMES or _is_float_column(_column(records, label_col, source))
    ):
        # A "label" column holding scores is a score column (the hub's STS-B names it "label").
        if score_col is None or label_column is not None:
            score_col = label_col
        label_col = None

    labels, label_names = (None, None)
    if label_col is not None:
        labels, label_names = _labels(records, label_col, source)
    return {
        "texts": _texts(records, text_col, source),
        "pairs": None if pair_col is None else _texts(records, pair_col, source),
        "labels": labels,
        "label_names": label_names,
        "scores": None if score_col is None else _scores(records, score_col, source),
    }


def _named(header: list[str], column: str | None, flag: str, source: str) -> str | None:
    """The column the user named, checked against the header."""
    if column is None or column in header:
        return column
    raise NlpressError(
        f"column '{column}' not found in {source} (available: {', '.join(header)}); "
        f"pass {flag} with one of them"
    )


def _find(header: list[str], names: tuple[str, ...], exclude: tuple[str | None, ...]) -> str | None:
    """The first header entry matching one of ``names`` (in their order), ignoring case."""
    by_lower = {h.lower(): h for h in reversed(header) if h not in exclude}
    return next((by_lower[n] for n in names if n in by_lower), None)


def _column(records: list[Record], column: str, source: str) -> list[tuple[str, object]]:
    """(where, raw value) of one column; a row without it is an error."""
    out = []
    for record in records:
        if column not in record.values:
            raise NlpressError(
                f"{source} {record.where} has no field '{column}'; every row needs the same fields"
            )
        value = record.values[column]
        if value is not None and not isinstance(value, str | int | float | bool):
            raise NlpressError(
                f"{source} {record.where} has a {type(value).__name__} in '{column}' "
                f"({short(value, 40)}); each field must be text or a number"
            )
        out.append((record.where, value))
    return out


def _texts(records: list[Record], column: str, source: str) -> list[str]:
    texts = []
    for where, value in _column(records, column, source):
        if value is None:
            raise NlpressError(f"{source} {where} has no text in '{column}'; fill it in")
        texts.append(str(value))
    return texts


def _labels(records: list[Record], column: str, source: str) -> tuple[list[int], list[str] | None]:
    """Integer labels stay as they are; any other labels map to ids in sorted order."""
    raw = []
    for where, value in _column(records, column, source):
        if value is None or str(value).strip() == "":
            raise NlpressError(
                f"{source} {where} has an empty label in '{column}'; fill it in or drop the row"
            )
        raw.append(value)
    ints = [_as_int(v) for v in raw]
    if all(i is not None for i in ints):
        for (where, _), i in zip(_column(records, column, source), ints, strict=True):
            if not 0 <= i < MAX_CLASSES:
                raise NlpressError(
                    f"{source} {where} has label {short(i, 30)} in '{column}'; integer labels are "
                    f"class ids from 0 to {MAX_CLASSES - 1}: renumber the labels"
                )
        return ints, None
    names = sorted({str(v).strip() for v in raw})
    ids = {name: i for i, name in enumerate(names)}
    return [ids[str(v).strip()] for v in raw], names


def _scores(records: list[Record], column: str, source: str) -> list[float]:
    scores = []
    for where, value in _column(records, column, source):
        score = _as_float(value)
        if score is not None and not math.isfinite(score):
            raise NlpressError(
                f"{source} {where} has score {short(value, 30)} in '{column}'; scores must be "
                "finite numbers: fix that row"
            )
        if score is None:
            shown = "an empty score" if value is None or str(value).strip() == "" else repr(value)
            raise NlpressError(
                f"{source} {where} has {shown} in '{column}', not a number; fix that row"
            )
        scores.append(score)
    return scores


def _is_float_column(values: list[tuple[str, object]]) -> bool:
    """True when every value is a number and some are floats that are not whole numbers."""
    numbers = [_as_float(v) for _, v in values]
    if any(n is None for n in numbers):
        return False
    typed_floats = any(isinstance(v, float) for _, v in values)
    # nan/inf are not whole numbers either: the column is read as scores, where they are refused
    return typed_floats or any(not math.isfinite(n) or not n.is_integer() for n in numbers)


def _as_int(value: object) -> int | None:
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _as_float(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(str(value).strip()) if not isinstance(value, int | float) else float(value)
    except ValueError:
        return None
