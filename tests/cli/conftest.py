"""Shared pieces of the end-to-end CLI tests: runners (in-process and subprocess) and checks."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# The cheapest benchmark that still runs every phase: one round, fixed length, no memory probe.
FAST = ["--rounds", "1", "--seq-len", "16", "--no-memory"]


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]

    def json(self) -> dict:
        """stdout must be exactly one JSON object."""
        data = json.loads(self.out)
        assert isinstance(data, dict), self.out
        return data


@pytest.fixture(scope="session")
def built_artifact(tiny_bert, tmp_path_factory) -> Path:
    """A real int8 artifact of the tiny BERT, built once; tests that change it use a copy."""
    import nlpress
    from nlpress.bench.harness import BenchConfig

    out = tmp_path_factory.mktemp("built") / "earlier"
    bench = BenchConfig(rounds=1, seq_len=16, progress=False)
    nlpress.compress(
        tiny_bert,
        "sentence-embedding",
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
def earlier(built_artifact, tmp_path) -> Path:
    """A copy of ``built_artifact``: the earlier artifact a run must not lose."""
    out = tmp_path / "earlier"
    shutil.copytree(built_artifact, out)
    return out


@pytest.fixture()
def cli(capsys):
    """Run ``nlpress.cli.main`` in this process; returns exit code, stdout and stderr."""
    from nlpress.cli import main

    def run(*args) -> Result:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Result(rc, out, err)

    return run


def _subprocess_env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def _nlpress_command(*args) -> list[str]:
    return [sys.executable, "-m", "nlpress.cli", *(str(a) for a in args)]


@pytest.fixture()
def cli_subprocess():
    """Run ``python -m nlpress.cli`` in a fresh process; returns exit code, stdout and stderr."""

    def run(*args, timeout: float = 180) -> Result:
        proc = subprocess.run(
            _nlpress_command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_subprocess_env(),
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture()
def lm_text(tmp_path) -> Path:
    p = tmp_path / "lm.txt"
    p.write_text(
        "the quick brown fox jumps over the lazy dog\n"
        "a man is playing a guitar and a woman is playing the piano\n"
        "the cat sat on the mat with the dog on a very good day\n"
        "this movie was very good and fun but the plot was boring\n"
    )
    return p


def _numbers(tree, path: str = ""):
    """(path, value) of every int/float in a JSON tree (bools excluded)."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


def _check_artifact(out: Path, model_file: str) -> dict:
    """The artifact folder is complete and readable; returns metrics.json."""
    from nlpress.recipe import load_recipe

    out = Path(out)
    for name in (
        model_file,
        "nlpress.json",
        "recipe.yaml",
        "metrics.json",
        "env.json",
        "report.md",
        "report.html",
        "config.json",
        "tokenizer_config.json",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "tokenizer.json").is_file() or (out / "vocab.txt").is_file()
    assert not list(out.parent.glob(f".{out.name}.nlpress-*")), "temporary folder left behind"
    meta = json.loads((out / "nlpress.json").read_text())
    assert meta["model_file"] == model_file
    assert load_recipe(out / "recipe.yaml").steps  # the resolved recipe reads back
    json.loads((out / "env.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    bad = [(p, v) for p, v in _numbers(metrics) if not math.isfinite(v)]
    assert not bad, f"non-finite numbers in metrics.json: {bad}"
    for row in ("baseline", "result"):
        for key in ("size_bytes", "latency_p50_ms", "throughput"):
            assert metrics[row][key] > 0, (row, key)
    assert set(metrics["ratios"]) >= {"throughput_speedup", "latency_speedup", "size_fraction"}
    assert "<html" in (out / "report.html").read_text().lower()
    return metrics


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """(mtime_ns, bytes) of every file under ``folder``: equal snapshots mean untouched."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _leftovers(out: Path) -> list[Path]:
    """Temporary or moved-aside folders beside ``out``."""
    out = Path(out)
    return list(out.parent.glob(f".{out.name}.nlpress-*"))


# Helpers as fixtures: with --import-mode=importlib a test module cannot import this conftest.
@pytest.fixture()
def fast() -> list[str]:
    return list(FAST)


@pytest.fixture()
def check_artifact():
    return _check_artifact


@pytest.fixture()
def snapshot():
    return _snapshot


@pytest.fixture()
def leftovers():
    return _leftovers


@pytest.fixture()
def nlpress_command():
    return _nlpress_command


@pytest.fixture()
def subprocess_env():
    return _subprocess_env()


@pytest.fixture()
def rejects_lm_compress(tmp_path, tiny_llama128, lm_corpus, cli):
    """``rejects_lm_compress(extra, word)``: compress of the tiny Llama with ``extra`` arguments
    fails with exit 2, one ``error:`` line containing ``word``, and leaves nothing behind.
    ``{empty}`` and ``{short}`` in ``extra`` name an empty and a one-line text file."""
    empty, short = tmp_path / "empty.txt", tmp_path / "short.txt"
    empty.write_text("\n \n")
    short.write_text("the cat sat on the mat\n")
    out = tmp_path / "out"

    def check(extra: list[str], word: str) -> None:
        extra = [e.format(empty=empty, short=short) for e in extra]
        args = ["compress", "--model", tiny_llama128, "--data", lm_corpus, *extra, "--out", out]
        r = cli(*args, *FAST)
        assert r.rc == 2, r.err
        lines = [ln for ln in r.err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and word in lines[0], r.err
        assert not out.exists() and not _leftovers(out)

    return check
