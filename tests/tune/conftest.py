"""Data and runners for the tune tests: the tiny classifier's dev and training files."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

WORDS = (
    "the a movie film great terrible plot fun boring not very good bad best worst love hate".split()
)

# the cheapest search that still runs every phase: a 3-family space, one benchmark round
FAST = ["--rounds", "1", "--objective", "size", "--max-drop", "5", "--space", "int8,static,prune"]


def _rows(seed: int, n: int) -> str:
    rng = random.Random(seed)
    body = "".join(
        f"{' '.join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))}\t{rng.randint(0, 1)}\n"
        for _ in range(n)
    )
    return "sentence\tlabel\n" + body


@pytest.fixture()
def dev_file(tmp_path) -> Path:
    p = tmp_path / "dev.tsv"
    p.write_text(_rows(0, 40))
    return p


@pytest.fixture()
def train_file(tmp_path) -> Path:
    p = tmp_path / "train.tsv"
    p.write_text(_rows(1, 48))
    return p


def tune_command(*args) -> list[str]:
    return [sys.executable, "-m", "nlpress.cli", "-q", "tune", *(str(a) for a in args)]


def env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def run_tune(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        tune_command(*args), capture_output=True, text=True, timeout=timeout, env=env()
    )


def study_rows(storage, out: Path | None = None) -> list:
    """Every trial of the one study in ``storage`` (a URL, or the journal file in ``out``)."""
    import optuna

    from nlpress.tune.study import open_storage

    storage = open_storage(storage, out)
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()


def computed(trials) -> list:
    """Trials that were built and measured (finished, not a repeat of an earlier one)."""
    return [
        t for t in trials if t.user_attrs.get("done") and t.user_attrs.get("duplicate_of") is None
    ]


def front_of(trials) -> set:
    """The Pareto front as a set of (recipe parameters, values)."""
    from nlpress.tune.front import pareto
    from nlpress.tune.trial import trial_row

    rows = [trial_row(t) for t in trials if t.user_attrs.get("done")]
    keys = {t.number: t.user_attrs["key"] for t in trials if t.user_attrs.get("done")}
    return {
        (keys[r["number"]], round(r["drop"], 6), round(r["value"], 6)) for r in pareto(rows, "size")
    }


@pytest.fixture()
def kit():
    """The helpers above, for the test modules (conftest is not importable by name here)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        FAST=FAST,
        computed=computed,
        env=env,
        front_of=front_of,
        run_tune=run_tune,
        study_rows=study_rows,
        tune_command=tune_command,
    )
