"""kill -9 a tune three times at random moments: the resumed run recomputes no finished trial
and ends with the same front as an uninterrupted run with the same seed."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

TRIALS = 5


def _args(kit, model, data, out: Path) -> list:
    return [
        "--model",
        model,
        "--data",
        data,
        "--trials",
        TRIALS,
        "--seed",
        3,
        *kit.FAST,
        "--out",
        out,
    ]


def _kill_at_random_moment(kit, args: list, out: Path, rng: random.Random) -> None:
    """Start a tune, wait until a new trial has begun (or a random deadline), kill -9 it."""
    trials = out / "trials"
    before = len(list(trials.glob("*/recipe.yaml"))) if trials.exists() else 0
    proc = subprocess.Popen(
        kit.tune_command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=kit.env()
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(trials.glob("*/recipe.yaml"))) > before:
                break
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 1.0))  # somewhere inside the trial: build, measure or tell
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_kill9_three_times_then_resume(kit, tiny_classifier, dev_file, tmp_path):
    rng = random.Random(7)
    ref, out = tmp_path / "uninterrupted", tmp_path / "killed"
    done = kit.run_tune(*_args(kit, tiny_classifier, dev_file, ref))
    assert done.returncode == 0, done.stderr[-2000:]
    for _ in range(3):
        _kill_at_random_moment(kit, _args(kit, tiny_classifier, dev_file, out), out, rng)
    resumed = kit.run_tune(
        *_args(kit, tiny_classifier, dev_file, out)
    )  # the same command continues
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    trials = kit.study_rows(None, out)
    built = kit.computed(trials)
    # no finished trial was computed twice: one computation per recipe
    assert len(built) == TRIALS
    assert max(Counter(t.user_attrs["key"] for t in built).values()) == 1
    # what was interrupted was retried with the same recipe
    assert any(t.user_attrs.get("retry_of") is not None for t in trials)
    for t in trials:
        if t.user_attrs.get("retry_of") is not None:
            orig = next(o for o in trials if o.number == t.user_attrs["retry_of"])
            assert orig.params == t.params and orig.state.name == "FAIL"
    assert kit.front_of(trials) == kit.front_of(kit.study_rows(None, ref))
    assert (out / "best" / "nlpress.json").is_file()
