"""Shared pieces of the hostile-input tests: an in-process CLI, a built artifact, and the check
that a user error is one ``error:`` line, exit 2, with nothing written and nothing changed."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

FAST = ["--rounds", "1", "--seq-len", "16", "--no-memory"]


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]


@pytest.fixture()
def cli(capsys):
    """``nlpress.cli.main`` in this process; returns exit code, stdout and stderr."""
    from nlpress.cli import main

    def run(*args) -> Result:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Result(rc, out, err)

    return run


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file (and symlink target) under ``folder``: equal trees mean byte-identical."""
    folder = Path(folder)
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = b"-> " + str(p.readlink()).encode()
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = b"<dir>"
    return out


@pytest.fixture()
def tree():
    return _tree


def _user_error(r: Result, word: str | None = None) -> str:
    assert r.rc == 2, (r.rc, r.err[-3000:])
    assert r.out == "", r.out
    assert len(r.err_lines) == 1, r.err[-3000:]
    line = r.err_lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in r.err
    if word:
        assert word in line, line
    return line


@pytest.fixture()
def user_error():
    """``user_error(result, word)``: exit 2, no stdout, one ``error:`` line holding ``word``."""
    return _user_error


@pytest.fixture()
def fast() -> list[str]:
    return list(FAST)


@pytest.fixture(scope="session")
def cls_artifact(tiny_classifier, tmp_path_factory) -> Path:
    """An int8 ONNX artifact of the tiny classifier, built once; tests change copies of it."""
    import nlpress
    from nlpress.bench.harness import BenchConfig

    out = tmp_path_factory.mktemp("hostile-built") / "art"
    bench = BenchConfig(rounds=1, seq_len=16, progress=False)
    nlpress.compress(
        tiny_classifier,
        "text-classification",
        None,
        "int8",
        out,
        limit=8,
        bench=bench,
        memory=False,
        progress=False,
    )
    return out


@pytest.fixture()
def art(cls_artifact, tmp_path) -> Path:
    """A fresh copy of ``cls_artifact``."""
    dst = tmp_path / "art"
    shutil.copytree(cls_artifact, dst)
    return dst


@pytest.fixture()
def model_copy(tiny_classifier, tmp_path):
    """``model_copy(name)``: a fresh copy of the tiny classifier's model folder."""

    def make(name: str = "model", src: Path | None = None) -> Path:
        dst = tmp_path / name
        shutil.copytree(src or tiny_classifier, dst)
        return dst

    return make


@pytest.fixture()
def train_tsv(tmp_path) -> Path:
    """48 labelled rows of two classes: enough for a few optimizer steps."""
    import random

    rng = random.Random(0)
    good, bad = ["good", "great", "fun", "best", "love"], ["bad", "boring", "worst", "hate"]
    rows = []
    for i in range(48):
        y = i % 2
        words = [rng.choice(good if y else bad) for _ in range(4)]
        rows.append(f"the movie was {' '.join(words)}\t{y}")
    p = tmp_path / "train.tsv"
    p.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return p
