"""Readers: GLUE layouts without flags, CSV/JSONL/TXT, hub names, and every user-facing error."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from nlpress.data.readers import TextData, builtin_sentences, read_data, read_text
from nlpress.errors import NlpressError

SST2 = 'sentence\tlabel\nhide new secretions from the parental units \t0\na "great" film \t1\n'
STSB = (
    "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\t"
    "An air plane is taking off.\t5.000\n"
    "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man plays a flute.\t"
    'A man plays a "large" flute.\t3.800\n'
)
MRPC = (
    "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    '1\t702876\t702977\tHe called him "the witness".\tReferring to him as "the witness", he spoke.\n'
    "0\t2108705\t2108831\tYucaipa owned Dominick's.\tYucaipa bought Dominick's in 1995.\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_sst2_layout(tmp_path: Path) -> None:
    data = read_data(write(tmp_path, "sst2.tsv", SST2))
    assert data.texts == ["hide new secretions from the parental units ", 'a "great" film ']
    assert data.labels == [0, 1] and data.label_names is None
    assert data.pairs is None and data.scores is None
    assert data.inputs() == data.texts


def test_stsb_layout(tmp_path: Path) -> None:
    data = read_data(write(tmp_path, "stsb.tsv", STSB))
    assert data.texts == ["A plane is taking off.", "A man plays a flute."]
    assert data.pairs == ["An air plane is taking off.", 'A man plays a "large" flute.']
    assert data.scores == [5.0, 3.8] and data.labels is None


def test_mrpc_layout_with_bom_and_quotes(tmp_path: Path) -> None:
    path = tmp_path / "mrpc.tsv"
    path.write_bytes(MRPC.encode("utf-8"))
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    data = read_data(path)
    assert data.texts[0] == 'He called him "the witness".'
    assert data.pairs[0] == 'Referring to him as "the witness", he spoke.'
    assert data.labels == [1, 0]
    assert data.inputs()[1] == ("Yucaipa owned Dominick's.", "Yucaipa bought Dominick's in 1995.")


def test_csv_with_quoting_and_string_labels(tmp_path: Path) -> None:
    text = 'text,label\n"Good, really good",pos\nbad,neg\nfine,pos\n'
    data = read_data(write(tmp_path, "d.csv", text))
    assert data.texts == ["Good, really good", "bad", "fine"]
    assert data.label_names == ["neg", "pos"] and data.labels == [1, 0, 1]


def test_jsonl_pairs_and_float_label_is_score(tmp_path: Path) -> None:
    lines = [
        '{"premise": "A cat sits.", "hypothesis": "An animal sits.", "label": 4.5}',
        "",
        '{"premise": "A dog runs.", "hypothesis": "Nobody moves.", "label": 0.25}',
    ]
    data = read_data(write(tmp_path, "d.jsonl", "\n".join(lines)))
    assert data.inputs() == [("A cat sits.", "An animal sits."), ("A dog runs.", "Nobody moves.")]
    assert data.scores == [4.5, 0.25] and data.labels is None


def test_json_array_and_explicit_columns(tmp_path: Path) -> None:
    text = '[{"review": "ok", "stars": 3, "text": "x"}, {"review": "meh", "stars": 1, "text": "y"}]'
    data = read_data(write(tmp_path, "d.json", text), text_column="review", label_column="stars")
    assert data.texts == ["ok", "meh"] and data.labels == [3, 1]


def test_txt_skips_blank_lines(tmp_path: Path) -> None:
    data = read_data(write(tmp_path, "d.txt", "first line\n\n  \nsecond line\n"))
    assert data.texts == ["first line", "second line"] and data.labels is None


def test_limit_reads_first_rows(tmp_path: Path) -> None:
    rows = "".join(f"text {i}\t{i % 2}\n" for i in range(50))
    path = write(tmp_path, "d.tsv", "sentence\tlabel\n" + rows + "broken line\n")
    data = read_data(path, limit=3)  # the broken last line is never read
    assert data.texts == ["text 0", "text 1", "text 2"] and data.source == str(path)


def test_textdata_head_and_slice() -> None:
    data = TextData(texts=["a", "b", "c"], labels=[0, 1, 0], label_names=["x", "y"], source="s")
    assert data.head(2).texts == ["a", "b"] and data.head(2).labels == [0, 1]
    part = data.slice(1, 3)
    assert len(part) == 2 and part.labels == [1, 0] and part.label_names == ["x", "y"]


@pytest.mark.parametrize(
    ("name", "text", "kwargs", "expected"),
    [
        ("empty.tsv", "", {}, "is empty"),
        ("header.tsv", "sentence\tlabel\n", {}, "no rows"),
        ("d.tsv", SST2, {"label_column": "stars"}, "column 'stars' not found"),
        ("d.tsv", SST2, {"text_column": "body"}, "--text-column"),
        ("d.tsv", SST2, {"text_pair_column": "other"}, "--text-pair-column"),
        ("d.tsv", "body\tlabel\nhello\t1\n", {}, "no text column found"),
        ("d.tsv", "sentence\tlabel\nok\t1\ntoo\tmany\tfields\n", {}, "line 3 has 3 fields"),
        ("d.tsv", "sentence\tlabel\nok\t1\nno label\t\n", {}, "line 3 has an empty label"),
        ("d.csv", "text,label\nok,1\n", {"limit": 0}, "limit must be at least 1"),
        ("d.jsonl", '{"text": "a"}\n{"txt": "b"}\n', {}, "line 2 has no field 'text'"),
        ("d.jsonl", '{"text": "a"}\nnot json\n', {}, "line 2 is not valid JSON"),
        ("d.xlsx", "whatever", {}, "unsupported file type"),
        ("d.txt", "hello\n", {"label_column": "label"}, "has no columns"),
        ("d.tsv", "sentence\tscore\nok\tn/a\n", {}, "'n/a' in 'score', not a number"),
    ],
)
def test_errors_name_the_problem(
    tmp_path: Path, name: str, text: str, kwargs: dict, expected: str
) -> None:
    with pytest.raises(NlpressError, match=expected) as info:
        read_data(write(tmp_path, name, text), **kwargs)
    assert "\n" not in str(info.value)


def test_missing_column_lists_available_columns(tmp_path: Path) -> None:
    with pytest.raises(NlpressError, match=r"available: sentence, label"):
        read_data(write(tmp_path, "d.tsv", SST2), label_column="stars")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NlpressError, match="data file not found"):
        read_data(tmp_path / "nope.tsv")
    with pytest.raises(NlpressError, match="not a file"):
        read_data(tmp_path)


def fake_datasets(monkeypatch: pytest.MonkeyPatch, load_dataset) -> None:
    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)


def test_hub_name_loads_split_and_config(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class Split:
        def __init__(self, table: dict) -> None:
            self.table = table

        def __len__(self) -> int:
            return len(next(iter(self.table.values())))

        def select(self, rows) -> Split:
            return Split({k: [v[i] for i in rows] for k, v in self.table.items()})

        def to_dict(self) -> dict:
            return self.table

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        return Split({"sentence": ["a", "b", "c"], "label": [1, 0, 1], "idx": [0, 1, 2]})

    fake_datasets(monkeypatch, load_dataset)
    data = read_data("nyu-mll/glue:sst2", limit=2)
    assert calls == [("nyu-mll/glue", "sst2", "validation")]
    assert data.texts == ["a", "b"] and data.labels == [1, 0] and data.source == "nyu-mll/glue:sst2"


def test_hub_failure_says_to_pass_a_local_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_dataset(name, config, split):
        raise ConnectionError("Couldn't reach the Hub\nsecond line")

    fake_datasets(monkeypatch, load_dataset)
    with pytest.raises(NlpressError, match="could not load 'glue:sst2'.*local") as info:
        read_data("glue:sst2", split="train")
    assert "split 'train'" in str(info.value) and "\n" not in str(info.value)


def test_read_text(tmp_path: Path) -> None:
    assert (
        read_text(write(tmp_path, "t.raw", " = Title = \nSome text.\n"))
        == " = Title = \nSome text.\n"
    )
    with pytest.raises(NlpressError, match="is empty"):
        read_text(write(tmp_path, "e.txt", "\n\n"))
    with pytest.raises(NlpressError, match="not found"):
        read_text(tmp_path / "missing.txt")


def test_builtin_sentences_are_varied() -> None:
    data = builtin_sentences()
    lengths = [len(t.split()) for t in data.texts]
    assert 250 <= len(data) <= 400 and len(set(data.texts)) == len(data)
    assert min(lengths) >= 4 and max(lengths) >= 40
    assert sum(t.endswith("?") for t in data.texts) >= 20 and data.source == "builtin"


MRPC_REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "mrpc" / "train.tsv"


@pytest.mark.skipif(not MRPC_REAL.is_file(), reason="shared GLUE data not present")
def test_real_mrpc_file() -> None:
    data = read_data(MRPC_REAL, limit=5)
    assert len(data) == 5 and data.pairs is not None and set(data.labels) <= {0, 1}
    assert data.texts[0].startswith("Amrozi accused his brother")


def test_line_separators_inside_fields_stay_in_the_field(tmp_path: Path) -> None:
    tsv = read_data(
        write(tmp_path, "d.tsv", "sentence\tlabel\none\u2028two\x85three\t1\r\nfour\t0\r\n")
    )
    assert tsv.texts == ["one\u2028two\x85three", "four"] and tsv.labels == [1, 0]
    csv_data = read_data(write(tmp_path, "d.csv", 'text,label\n"multi\nline, text",1\nok,0\n'))
    assert csv_data.texts == ["multi\nline, text", "ok"]
    jsonl = read_data(write(tmp_path, "d.jsonl", '{"text": "a\u2028b", "label": 1}\n'))
    assert jsonl.texts == ["a\u2028b"]


def test_csv_field_too_large_names_the_line(tmp_path: Path) -> None:
    text = "text,label\nok,1\n" + "x" * 200_000 + ",0\n"
    with pytest.raises(NlpressError, match="line 3 cannot be parsed"):
        read_data(write(tmp_path, "d.csv", text))


def test_check_label_set_names_the_source_and_the_owner():
    from types import SimpleNamespace

    from nlpress.data.readers import check_label_set

    named = SimpleNamespace(label_names=["pos", "meh"], labels=[0, 1])
    with pytest.raises(NlpressError, match="--train label 'meh' is not one of the model's labels"):
        check_label_set(named, {"pos", "neg"}, 2, "--train", "model", "check the file")
    ints = SimpleNamespace(label_names=None, labels=[0, 2])
    with pytest.raises(NlpressError, match="the data has label 2 but the teacher has 2 classes"):
        check_label_set(ints, {"0", "1"}, 2, "the data", "teacher", "check --label-column")
    check_label_set(SimpleNamespace(label_names=None, labels=[0, 1]), set(), 2, "x", "y", "z")
