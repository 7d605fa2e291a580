"""Unit tests of the artifact folder: target checks, the atomic write, stale leftovers, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from nlpress import artifact
from nlpress.artifact import (
    META,
    atomic_artifact,
    check_target,
    is_artifact,
    read_meta,
    write_json,
)
from nlpress.errors import NlpressError


def make_artifact(folder: Path, marker: str = "old") -> Path:
    folder.mkdir()
    write_json(folder / META, {"format_version": artifact.FORMAT_VERSION, "task": "x"})
    (folder / "metrics.json").write_text(json.dumps({"marker": marker}))
    (folder / f"only-{marker}.txt").write_text(marker)
    artifact.seal(folder)  # the file list: what --force may replace
    return folder


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {
        p.name: (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def leftovers(out: Path) -> list[Path]:
    return list(out.parent.glob(f".{out.name}.nlpress-*"))


def dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


# -- check_target --------------------------------------------------------------------------------
def test_check_target_accepts_new_and_empty_folders(tmp_path):
    check_target(tmp_path / "new", force=False)
    (tmp_path / "empty").mkdir()
    check_target(tmp_path / "empty", force=False)


def test_check_target_refusals(tmp_path):
    with pytest.raises(NlpressError, match="does not exist"):
        check_target(tmp_path / "missing" / "out", force=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NlpressError, match="is a file"):
        check_target(tmp_path / "file", force=True)
    art = make_artifact(tmp_path / "art")
    with pytest.raises(NlpressError, match="--force"):
        check_target(art, force=False)
    check_target(art, force=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    for force in (False, True):
        with pytest.raises(NlpressError, match="not an nlpress artifact"):
            check_target(mine, force=force)


# -- atomic_artifact -----------------------------------------------------------------------------
def test_success_writes_new_folder(tmp_path):
    out = tmp_path / "out"
    with atomic_artifact(out, force=False) as tmp:
        assert tmp.parent == tmp_path and tmp.name == f".out.nlpress-tmp-{os.getpid()}"
        assert not out.exists()
        (tmp / META).write_text("{}")
    assert (out / META).is_file()
    assert not leftovers(out)


def test_success_replaces_with_force(tmp_path):
    out = make_artifact(tmp_path / "out")
    with atomic_artifact(out, force=True) as tmp:
        write_json(tmp / META, {"format_version": artifact.FORMAT_VERSION})
        (tmp / "metrics.json").write_text(json.dumps({"marker": "new"}))
    assert json.loads((out / "metrics.json").read_text()) == {"marker": "new"}
    assert not (out / "only-old.txt").exists()  # replaced, not merged
    assert not leftovers(out)


def test_existing_artifact_without_force_is_refused_before_the_block(tmp_path):
    out = make_artifact(tmp_path / "out")
    before = snapshot(out)
    ran = False
    with pytest.raises(NlpressError, match="--force"):
        with atomic_artifact(out, force=False):
            ran = True
    assert not ran
    assert snapshot(out) == before and not leftovers(out)


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt(), NlpressError("bad")])
def test_failure_inside_the_block_leaves_target_untouched(tmp_path, exc):
    out = make_artifact(tmp_path / "out")
    before = snapshot(out)
    with pytest.raises(type(exc)):
        with atomic_artifact(out, force=True) as tmp:
            (tmp / "model.onnx").write_bytes(b"half")
            raise exc
    assert snapshot(out) == before
    assert not tmp.exists() and not leftovers(out)


def test_failure_on_a_new_target_creates_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_artifact(out, force=False) as tmp:
            (tmp / "x").write_text("x")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_target_filled_meanwhile_is_not_overwritten(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(NlpressError, match="not an nlpress artifact"):
        with atomic_artifact(out, force=True) as tmp:
            (tmp / META).write_text("{}")
            out.mkdir()
            (out / "someone-else.txt").write_text("mine")
    assert [p.name for p in out.iterdir()] == ["someone-else.txt"]
    assert not leftovers(out)


def test_missing_parent_is_an_error(tmp_path):
    out = tmp_path / "missing" / "out"
    with pytest.raises(NlpressError, match="does not exist"):
        with atomic_artifact(out, force=True):
            pytest.fail("the block must not run")
    assert not out.parent.exists()


def test_works_outside_the_main_thread(tmp_path):
    out = tmp_path / "out"
    errors: list[BaseException] = []

    def work():
        try:
            with atomic_artifact(out, force=False) as tmp:
                (tmp / META).write_text("{}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert not errors and is_artifact(out)


# -- leftovers of a killed run ---------------------------------------------------------------------
def test_stale_temp_folders_are_removed_live_ones_kept(tmp_path):
    out = make_artifact(tmp_path / "out")
    stale = tmp_path / f".out.nlpress-tmp-{dead_pid()}"
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"half")
    live = tmp_path / f".out.nlpress-tmp-{os.getppid()}"  # a process that is running
    live.mkdir()
    other = tmp_path / f".other.nlpress-tmp-{dead_pid()}"  # another target's: not ours
    other.mkdir()
    with atomic_artifact(out, force=True) as tmp:
        (tmp / META).write_text("{}")
    assert not stale.exists()
    assert live.is_dir() and other.is_dir()


def test_artifact_moved_aside_by_a_killed_swap_is_put_back(tmp_path):
    """kill -9 between the two renames of the swap: the earlier artifact sits in .out.nlpress-old-PID."""
    out = tmp_path / "out"
    old = make_artifact(tmp_path / f".out.nlpress-old-{dead_pid()}")
    before = snapshot(old)
    with pytest.raises(NlpressError, match="--force"):
        with atomic_artifact(out, force=False):
            pass
    assert snapshot(out) == before
    assert not leftovers(out)


def test_glob_characters_in_the_name(tmp_path):
    out = make_artifact(tmp_path / "out[1]")
    stale = tmp_path / f".out[1].nlpress-tmp-{dead_pid()}"
    stale.mkdir()
    with atomic_artifact(out, force=True) as tmp:
        (tmp / META).write_text("{}")
    assert not stale.exists()


# -- signals -------------------------------------------------------------------------------------
@pytest.fixture()
def default_signals():
    """Handlers as in a process started from a terminal. A command started with `&` by a
    non-interactive shell ignores SIGINT, and nlpress leaves an ignored signal ignored."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGINT, old)
    signal.signal(signal.SIGTERM, old_term)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_inside_the_block_unwinds_and_cleans_up(tmp_path, sig, default_signals):
    out = make_artifact(tmp_path / "out")
    before = snapshot(out)
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with atomic_artifact(out, force=True) as tmp:
            (tmp / "model.onnx").write_bytes(b"half")
            os.kill(os.getpid(), sig)
            # the handler runs between bytecodes, or ~50 ms later if it first landed in a
            # finalizer (a garbage-collected object's __del__), where it is sent again
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                pass
            pytest.fail("the signal did not interrupt")
    assert snapshot(out) == before and not leftovers(out)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers


def test_swallowed_interrupt_still_calls_off_the_swap(tmp_path, default_signals):
    """A KeyboardInterrupt that some library caught (or printed from a finalizer) still counts."""
    out = make_artifact(tmp_path / "out")
    before = snapshot(out)
    with pytest.raises(KeyboardInterrupt):
        with atomic_artifact(out, force=True) as tmp:
            (tmp / META).write_text("{}")
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):
                    pass
            except KeyboardInterrupt:
                pass  # swallowed
    assert snapshot(out) == before and not leftovers(out)


def test_signal_during_the_swap_does_not_half_replace(tmp_path, monkeypatch):
    out = make_artifact(tmp_path / "out")
    real_replace = artifact._replace

    def replace_after_a_signal(tmp, target):
        os.kill(os.getpid(), signal.SIGTERM)
        real_replace(tmp, target)

    monkeypatch.setattr(artifact, "_replace", replace_after_a_signal)
    try:
        with atomic_artifact(out, force=True) as tmp:
            (tmp / META).write_text(json.dumps({"format_version": artifact.FORMAT_VERSION}))
            (tmp / "metrics.json").write_text(json.dumps({"marker": "new"}))
    except KeyboardInterrupt:  # escaping, it would end the whole pytest session
        pytest.fail("a signal during the swap interrupted it")
    assert json.loads((out / "metrics.json").read_text()) == {"marker": "new"}
    assert not leftovers(out)


# -- metadata ------------------------------------------------------------------------------------
def test_read_meta(tmp_path):
    art = make_artifact(tmp_path / "a")
    assert read_meta(art)["task"] == "x"
    (art / META).write_text("{broken")
    with pytest.raises(NlpressError, match="damaged"):
        read_meta(art)
    write_json(art / META, {"format_version": 999})
    with pytest.raises(NlpressError, match="incompatible"):
        read_meta(art)


def test_write_json_takes_numpy_and_paths(tmp_path):
    write_json(tmp_path / "m.json", {"a": np.float32(1.5), "b": np.arange(2), "c": Path("/x")})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1.5, "b": [0, 1], "c": "/x"}
    with pytest.raises(TypeError):
        write_json(tmp_path / "bad.json", {"a": object()})


def test_signal_inside_a_finalizer_is_not_lost(default_signals):
    """A KeyboardInterrupt raised in a __del__ is printed and dropped by Python: the handler must
    deliver the signal again so the run still stops."""
    import os
    import signal
    import time

    from nlpress.artifact import _Interrupts

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)  # the handler runs here, inside __del__

    with pytest.raises(KeyboardInterrupt), _Interrupts():
        Finalized()  # dropped at once
        time.sleep(5)
