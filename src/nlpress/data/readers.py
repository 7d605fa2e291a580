"""Read a user's evaluation or calibration data into one small in-memory shape, :class:`TextData`.

Users bring whatever they have: a GLUE TSV straight from the benchmark, a CSV from a spreadsheet,
JSONL from a labelling tool, a plain text file, or a Hugging Face ``datasets`` name. Every reader
turns its format into the same list of records (column name -> raw value); one function
(:func:`nlpress.data.columns.table_fields`) then picks the text / pair / label / score columns and
converts them. So column detection, label mapping and the error messages are written once.

Why not pandas: GLUE TSVs contain quote characters that are not CSV quoting (MRPC:
``"the witness"``), and the MRPC file starts with a UTF-8 BOM. ``csv.reader`` with
``quoting=QUOTE_NONE`` and ``encoding="utf-8-sig"`` reads both byte-exactly, with no extra
dependency, and keeps line numbers for the error messages.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from nlpress.data.columns import Record, table_fields
from nlpress.errors import NlpressError
from nlpress.guards import parse_json

logger = logging.getLogger(__name__)

FORMATS = (".tsv", ".csv", ".jsonl", ".json", ".txt")
_FORMATS_HINT = "pass a .tsv, .csv, .jsonl or .txt file"
# A Hugging Face dataset name: "glue", "nyu-mll/glue", optionally ":config" ("glue:sst2").
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?(:[\w.-]+)?$")


@dataclass
class TextData:
    """Texts (and optionally pairs, labels or scores) of one data set, aligned by row."""

    texts: list[str]
    pairs: list[str] | None = None  # second text of pair tasks
    labels: list[int] | None = None  # class ids (ints); see label_names
    label_names: list[str] | None = None  # sorted raw label strings when they were not ints
    scores: list[float] | None = None  # similarity scores (STS)
    source: str = ""  # path or dataset name, for reports

    def __len__(self) -> int:
        return len(self.texts)

    def inputs(self) -> list[str | tuple[str, str]]:
        """What a tokenizer takes: the texts, or (text, pair) tuples for pair tasks."""
        if self.pairs is None:
            return list(self.texts)
        return list(zip(self.texts, self.pairs, strict=True))

    def head(self, n: int) -> TextData:
        """The first ``n`` rows."""
        return self.slice(0, n)

    def slice(self, start: int, stop: int) -> TextData:
        """Rows ``start:stop``; label names are kept so ids keep their meaning."""

        def cut(values: list | None) -> list | None:
            return None if values is None else values[start:stop]

        return TextData(
            texts=self.texts[start:stop],
            pairs=cut(self.pairs),
            labels=cut(self.labels),
            label_names=self.label_names,
            scores=cut(self.scores),
            source=self.source,
        )


def read_data(
    path: str | os.PathLike,
    *,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    limit: int | None = None,
    split: str | None = None,
) -> TextData:
    """Read a .tsv/.csv/.jsonl/.json/.txt file, or a Hugging Face dataset ``name[:config]``.

    Columns are detected from common names (GLUE SST-2, STS-B and MRPC work without flags);
    the ``*_column`` arguments override detection. ``limit`` reads only the first rows.
    ``split`` picks the split of a hub dataset (default ``"validation"``).
    """
    check_limit(limit)
    name = os.fspath(path)
    columns = {
        "text_column": text_column,
        "text_pair_column": text_pair_column,
        "label_column": label_column,
    }
    if _is_dataset_name(name):
        header, records = _read_hub(name, split or "validation", limit)
        return TextData(**table_fields(header, records, source=name, **columns), source=name)
    if split is not None:
        logger.warning("split=%r ignored: %s is a local file", split, name)
    file = _existing_file(name)
    suffix = file.suffix.lower()
    if suffix == ".txt":
        if any(columns.values()):
            raise NlpressError(
                f"{name} is plain text (one text per line) and has no columns; "
                "drop the column options or use a .tsv/.csv/.jsonl file"
            )
        return TextData(texts=_read_lines(file, limit), source=name)
    if suffix == ".tsv":
        header, records = _read_delimited(file, limit, tsv=True)
    elif suffix == ".csv":
        header, records = _read_delimited(file, limit, tsv=False)
    elif suffix in (".jsonl", ".json"):
        header, records = _read_json(file, limit)
    else:
        raise NlpressError(f"unsupported file type '{file.suffix}' for {name}; {_FORMATS_HINT}")
    return TextData(**table_fields(header, records, source=name, **columns), source=name)


def check_limit(limit: int | None) -> None:
    """``limit`` (rows to read) is None or a positive integer; 0 or -5 is never "all rows"."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise NlpressError(
            f"limit must be at least 1, got {limit!r}; pass a positive number of rows"
        )


def check_label_set(d, names: set[str], n: int, source: str, owner: str, hint: str) -> None:
    """Refuse labelled rows ``d`` whose label names are not in ``names`` or whose integer labels
    reach ``n`` classes: ``source`` names the rows ("--train"), ``owner`` the model ("teacher")."""
    if d.label_names is not None:
        unknown = [x for x in d.label_names if x not in names]
        if unknown:
            raise NlpressError(
                f"{source} label {unknown[0]!r} is not one of the {owner}'s labels "
                f"{sorted(names)}; use the {owner}'s label set"
            )
    elif max(d.labels) >= n:
        raise NlpressError(
            f"{source} has label {max(d.labels)} but the {owner} has {n} classes; {hint}"
        )


def read_text(path: str | os.PathLike) -> str:
    """The whole content of a plain text file (for causal-LM perplexity and calibration).

    A table (.tsv/.csv/.jsonl/.json) is refused: its header, labels and tabs would be scored as
    if they were prose, and the perplexity would mean nothing."""
    if Path(os.fspath(path)).suffix.lower() in (".tsv", ".csv", ".jsonl", ".json"):
        raise NlpressError(
            f"{os.fspath(path)} is a table; causal-lm data is plain text: pass a .txt file "
            "(one document, or one text a line)"
        )
    file = _existing_file(os.fspath(path))
    text = _decode(file)
    if not text.strip():
        raise NlpressError(f"{file} is empty; pass a text file with some text in it")
    return text


def builtin_sentences() -> TextData:
    """The ~300 English sentences shipped with nlpress: the demo's data when the user gives none."""
    resource = resources.files("nlpress.data") / "builtin_sentences.txt"
    lines = resource.read_text(encoding="utf-8").splitlines()
    return TextData(texts=[s.strip() for s in lines if s.strip()], source="builtin")


def _is_dataset_name(name: str) -> bool:
    """True for 'glue:sst2' or 'org/name', false for anything that exists or looks like a file."""
    if os.path.exists(name) or Path(name).suffix.lower() in FORMATS:
        return False
    return bool(_DATASET_NAME.match(name))


def _existing_file(name: str) -> Path:
    file = Path(name)
    if not file.exists():
        raise NlpressError(f"data file not found: {name}; check the path")
    if not file.is_file():
        raise NlpressError(f"{name} is not a file; pass the path of a data file, not a folder")
    return file


def _decode(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise NlpressError(f"{file} is not UTF-8 text ({e.reason}); re-save it as UTF-8") from e


def _read_lines(file: Path, limit: int | None) -> list[str]:
    """One text per line, blank lines skipped."""
    texts = [line.strip() for line in _split_lines(_decode(file)) if line.strip()]
    if not texts:
        raise NlpressError(f"{file} is empty; add one text per line")
    return texts[:limit]


def _read_delimited(file: Path, limit: int | None, *, tsv: bool) -> tuple[list[str], list[Record]]:
    """TSV (tabs, no quoting at all, as GLUE writes it) or CSV (standard quoting)."""
    text = _decode(file)
    if not text.strip():
        raise NlpressError(f"{file} is empty; it needs a header line and data rows")
    stream = io.StringIO(text, newline="")  # rows end at \n, \r\n or \r only, as csv expects
    if tsv:
        reader = csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(stream)
    rows = _nonblank(reader, file)
    _, first = next(rows, (0, []))
    header = [name.strip() for name in first]
    records: list[Record] = []
    for line, fields in rows:
        if limit is not None and len(records) >= limit:
            break
        if len(fields) != len(header):
            hint = "fields must not contain tabs" if tsv else "quote fields that contain commas"
            raise NlpressError(
                f"{file} line {line} has {len(fields)} fields but the header has {len(header)}; "
                f"fix that line ({hint})"
            )
        records.append(Record(f"line {line}", dict(zip(header, fields, strict=True))))
    if not records:
        raise NlpressError(f"{file} has no rows, only a header; add data rows below the header")
    return header, records


def _nonblank(reader, file: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every row that is not blank; line numbers count from 1."""
    try:
        for fields in reader:
            if any(field.strip() for field in fields):
                yield reader.line_num, fields
    except csv.Error as e:  # an unclosed quote, a field over csv's size limit
        raise NlpressError(
            f"{file} line {reader.line_num} cannot be parsed ({e}); fix that line"
        ) from e


def _split_lines(text: str) -> list[str]:
    """Lines split at \n only (str.splitlines also splits inside text at \u2028, \x85, ...)."""
    return [line.rstrip("\r") for line in text.split("\n")]


def _read_json(file: Path, limit: int | None) -> tuple[list[str], list[Record]]:
    """JSON Lines (one object per line); a .json file holding one array of objects also works."""
    text = _decode(file)
    if not text.strip():
        raise NlpressError(f"{file} is empty; write one JSON object per line")
    if text.lstrip().startswith("["):
        try:
            items = [(i + 1, obj) for i, obj in enumerate(parse_json(text))]
        except NlpressError as e:
            raise NlpressError(f"{file} is not valid JSON ({e})") from e
        where = "item"
    else:
        items = list(_json_lines(file, text, limit))
        where = "line"
    records: list[Record] = []
    for number, obj in items[:limit]:
        if not isinstance(obj, dict):
            raise NlpressError(
                f"{file} {where} {number} is not a JSON object; write one object per row, "
                'like {"text": "...", "label": 1}'
            )
        records.append(Record(f"{where} {number}", obj))
    if not records:
        raise NlpressError(f"{file} has no rows; write one JSON object per line")
    return list(records[0].values), records


def _json_lines(file: Path, text: str, limit: int | None) -> Iterator[tuple[int, object]]:
    count = 0
    for number, line in enumerate(_split_lines(text), start=1):
        if not line.strip():
            continue
        if limit is not None and count >= limit:
            return
        try:
            yield number, parse_json(line)
        except NlpressError as e:
            raise NlpressError(
                f"{file} line {number} is not valid JSON ({e}); write one object per line"
            ) from e
        count += 1


def _read_hub(name: str, split: str, limit: int | None) -> tuple[list[str], list[Record]]:
    """A Hugging Face ``datasets`` split, ``name`` or ``name:config``; imported only when used."""
    dataset_name, _, config = name.partition(":")
    try:
        import datasets

        dataset = datasets.load_dataset(dataset_name, config or None, split=split)
        if limit is not None:
            dataset = dataset.select(range(min(limit, len(dataset))))
        table = dataset.to_dict()
    except Exception as e:  # offline, not installed, unknown name or split: all user-fixable
        reason = (str(e).splitlines() or [""])[0][:200]
        raise NlpressError(
            f"could not load '{name}' (no such file, and loading it as a Hugging Face dataset, "
            f"split '{split}', failed: {type(e).__name__}: {reason}); "
            "pass a local .tsv, .csv, .jsonl or .txt file instead"
        ) from e
    header = list(table)
    n = len(table[header[0]]) if header else 0
    records = [Record(f"row {i + 1}", {c: table[c][i] for c in header}) for i in range(n)]
    if not records:
        raise NlpressError(f"dataset '{name}' split '{split}' has no rows; pick another split")
    return header, records
