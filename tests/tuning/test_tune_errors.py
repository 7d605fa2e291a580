"""Bad inputs to ``nlpress tune``: each one ``error:`` line, exit 2, and nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture()
def cli(capsys):
    from nlpress.cli import main

    def run(*args):
        capsys.readouterr()
        rc = main([str(a) for a in args])
        return rc, capsys.readouterr().err

    return run


def _tree(p: Path) -> dict:
    return {str(f.relative_to(p)): f.read_bytes() for f in sorted(p.rglob("*")) if f.is_file()}


def _one_error(rc: int, err: str, match: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert match in lines[0], lines[0]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--max-drop", "-1"], "must be a number >= 0"),
        (["--max-drop", "lots"], "invalid float value"),
        (["--metric", "spearman"], "measured by accuracy, f1"),
        (["--budget", "0"], "leaves no time"),
        (["--budget", "soon"], "not a duration"),
        (["--storage", "postgresql://nobody@127.0.0.1:9/none"], "cannot reach --storage"),
        (["--objective", "speed"], "choose throughput, latency, size"),
        (["--space", "int8,distill"], "pass --train"),
        (["--train-steps", "0"], "--train-steps 0: give a whole number"),
        (["--student-steps", "-5"], "--student-steps -5: give a whole number"),
        (["--student-steps", "100"], "need training data: pass --train"),
    ],
)
def test_bad_input_is_one_line(cli, tiny_classifier, dev_file, tmp_path, extra, match):
    out = tmp_path / "tuned"
    rc, err = cli("tune", "--model", tiny_classifier, "--data", dev_file, "--out", out, *extra)
    _one_error(rc, err, match)
    assert not out.exists()  # refused before anything was written


def test_train_labels_must_be_the_models(cli, tiny_classifier, dev_file, tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\na good film\tspam\na bad film\tham\n")
    rc, err = cli(
        "tune",
        "--model",
        tiny_classifier,
        "--data",
        dev_file,
        "--train",
        train,
        "--out",
        tmp_path / "t",
    )
    _one_error(rc, err, "not one of the model's labels")


def test_out_holding_another_study_is_refused(cli, tiny_classifier, dev_file, tmp_path):
    out = tmp_path / "tuned"
    out.mkdir()
    (out / "study.json").write_text(
        json.dumps(
            {"study": "nlpress-tune-other", "fingerprint": {"model": "other", "max_drop": 2}}
        )
    )
    (out / "study.journal").write_text("{}\n")
    before = _tree(out)
    rc, err = cli("tune", "--model", tiny_classifier, "--data", dev_file, "--out", out)
    _one_error(rc, err, "holds another study")
    assert "--resume" in err and "--force" in err
    assert _tree(out) == before  # nothing lost


def test_resume_without_a_study(cli, tiny_classifier, dev_file, tmp_path):
    rc, err = cli(
        "tune",
        "--model",
        tiny_classifier,
        "--data",
        dev_file,
        "--out",
        tmp_path / "new",
        "--resume",
    )
    _one_error(rc, err, "holds no study")
