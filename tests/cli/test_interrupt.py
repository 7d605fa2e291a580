"""Interrupting ``nlpress compress`` never loses the earlier artifact and leaves no temp folder.

Each test starts a real ``compress --force`` over an earlier artifact in a subprocess, waits until
the temporary folder ``.NAME.nlpress-tmp-PID`` appears beside it, then signals the process.
``--rounds 30`` keeps it inside the temporary folder (benchmarking) for seconds, not milliseconds.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest


@pytest.fixture()
def slow_compress(tiny_bert, sts_file, nlpress_command, subprocess_env):
    """Start a long ``compress --force`` into ``out``; returns (process, its temp folder)."""
    procs: list[subprocess.Popen] = []

    def start(out: Path) -> tuple[subprocess.Popen, Path]:
        cmd = nlpress_command(
            "-q",
            "compress",
            "--model",
            tiny_bert,
            "--data",
            sts_file,
            "--out",
            out,
            "--force",
            "--rounds",
            "30",
            "--no-memory",
        )
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env
        )
        procs.append(proc)
        tmp = out.parent / f".{out.name}.nlpress-tmp-{proc.pid}"
        deadline = time.monotonic() + 120
        while not tmp.is_dir():
            if proc.poll() is not None:
                pytest.fail(
                    f"compress ended (rc {proc.returncode}) before its temp folder "
                    f"appeared:\n{proc.stderr.read()}"
                )
            assert time.monotonic() < deadline, "no temp folder after 120 s"
            time.sleep(0.01)
        return proc, tmp

    yield start
    for proc in procs:  # never leave a process behind, whatever the test did
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_removes_temp_and_keeps_earlier_artifact(
    sig, earlier, slow_compress, snapshot, leftovers
):
    before = snapshot(earlier)
    proc, tmp = slow_compress(earlier)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert "interrupted" in err
    assert out == ""
    assert not tmp.exists()
    assert not leftovers(earlier)
    assert snapshot(earlier) == before


def test_kill_9_keeps_earlier_artifact_and_next_run_cleans_up(
    earlier, slow_compress, snapshot, leftovers, tiny_bert, sts_file, cli, fast, check_artifact
):
    before = snapshot(earlier)
    proc, tmp = slow_compress(earlier)
    time.sleep(0.5)  # let it write into the temp folder
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert snapshot(earlier) == before
    assert tmp.is_dir(), "a kill -9 cannot clean up: the stale temp folder should be there"

    r = cli(
        "compress", "--model", tiny_bert, "--data", sts_file, "--out", earlier, "--force", *fast
    )
    assert r.rc == 0, r.err
    assert not tmp.exists()
    assert not leftovers(earlier)
    assert snapshot(earlier)["metrics.json"] != before["metrics.json"]
    check_artifact(earlier, "model.onnx")
