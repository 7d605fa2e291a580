"""Peak memory probe, run for real in a subprocess with a fake model factory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from nlpress.bench.memory import peak_memory_mb
from nlpress.bench.memprobe import peak_rss_mib
from nlpress.errors import NlpressError

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def fake_factory_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the probe process import tests/bench/nlpress_fake_model.py."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    )


def test_probe_measures_model_allocation() -> None:
    out = peak_memory_mb(
        "alpha-beta",
        batch_size=4,
        seq_len=16,
        texts=["alpha", "beta"],
        factory="nlpress_fake_model:build",
        preload=False,
        timeout=120,
    )
    assert out["model_peak_mb"] >= 150  # the fake holds 200 MiB of touched pages
    assert out["peak_rss_mb"] >= out["rss_after_import_mb"] + out["model_peak_mb"] - 1
    assert out["rss_after_load_mb"] > out["rss_after_import_mb"]
    assert out["batch_shape"] == [4, 16]


def test_probe_peak_does_not_inherit_parent_memory() -> None:
    """ru_maxrss would report the parent's peak after fork+exec; the probe must not."""
    ballast = np.ones(400 * 1024 * 1024 // 8)  # 400 MiB held by this (parent) process
    out = peak_memory_mb(
        "small", batch_size=2, seq_len=8, factory="nlpress_fake_model:build_small", preload=False
    )
    assert out["model_peak_mb"] < 100
    assert out["peak_rss_mb"] < 300
    del ballast


def test_probe_failure_raises_with_last_stderr_line() -> None:
    with pytest.raises(NlpressError, match="no model at /nowhere"):
        peak_memory_mb(
            "/nowhere", batch_size=1, seq_len=8, factory="nlpress_fake_model:broken", preload=False
        )


def test_probe_rejects_bad_shape() -> None:
    with pytest.raises(NlpressError, match="batch_size"):
        peak_memory_mb("x", batch_size=0, seq_len=8)


def test_peak_rss_of_this_process() -> None:
    peak, source = peak_rss_mib()
    assert peak > 0 and source in ("VmHWM", "ru_maxrss")
