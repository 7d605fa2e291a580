"""What the user sees on stderr: nlpress's warnings by default, only errors with -q, debug with -v,
no library chatter, and progress bars only on a terminal."""

from __future__ import annotations

import logging
import sys

import pytest

from nlpress.cli import build_parser, configure_logging, progress_enabled

# --task text-classification on a bare encoder: the loader warns that the head is random
RANDOM_HEAD = "has no trained weights"


@pytest.fixture(autouse=True)
def _restore_logging():
    """configure_logging changes process-wide logger levels; put them back after each test."""
    names = ["", "nlpress", "onnxruntime", "torch"]
    levels = {n: logging.getLogger(n).level for n in names}
    yield
    for n, lvl in levels.items():
        logging.getLogger(n).setLevel(lvl)
    configure_logging()  # leaves one handler of ours on root at the default levels


def test_nlpress_warning_reaches_the_user_by_default(tiny_bert, sst_file, cli):
    r = cli("eval", tiny_bert, "--task", "text-classification", "--data", sst_file)
    assert r.rc == 0
    assert any(ln.startswith("WARNING nlpress.") and RANDOM_HEAD in ln for ln in r.err_lines), r.err


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_leaves_only_errors_and_the_result(tiny_bert, sst_file, cli, where):
    args = ["eval", tiny_bert, "--task", "text-classification", "--data", sst_file]
    r = cli("-q", *args) if where == "before" else cli(*args, "-q")
    assert r.rc == 0 and "accuracy" in r.out
    assert r.err == ""
    r = cli("-q", "eval", "./no-such-model", "--data", sst_file)
    assert r.rc == 2 and r.err_lines == [r.err_lines[0]] and r.err.startswith("error: ")


def test_levels_per_flag():
    configure_logging()
    own, lib = logging.getLogger("nlpress"), logging.getLogger("onnxruntime")
    assert own.getEffectiveLevel() == logging.WARNING and lib.getEffectiveLevel() == logging.ERROR
    assert logging.getLogger().level == logging.WARNING  # root is not silenced
    assert logging.getLogger("some.other.library").isEnabledFor(logging.WARNING)
    configure_logging(quiet=True)
    assert not own.isEnabledFor(logging.WARNING) and own.isEnabledFor(logging.ERROR)
    configure_logging(verbose=True)
    assert own.isEnabledFor(logging.DEBUG) and lib.isEnabledFor(logging.WARNING)


def test_library_chatter_on_the_root_logger_is_hidden_but_not_with_verbose(capsys):
    configure_logging()
    logging.warning("Please consider to run pre-processing before quantization.")  # ORT does this
    logging.getLogger("nlpress.x").warning("kept in fp32")
    err = capsys.readouterr().err
    assert "pre-processing" not in err and "WARNING nlpress.x: kept in fp32" in err
    configure_logging(verbose=True)
    logging.warning("Please consider to run pre-processing before quantization.")
    assert "pre-processing" in capsys.readouterr().err


def test_one_handler_however_often_main_runs(capsys):
    for _ in range(3):
        configure_logging()
    logging.getLogger("nlpress.x").warning("once")
    assert capsys.readouterr().err.count("once") == 1


def test_progress_bars_only_on_a_terminal(monkeypatch):
    assert not progress_enabled(quiet=False, json_output=False)  # pytest's stderr is no terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress_enabled(quiet=False, json_output=False)
    assert not progress_enabled(quiet=True, json_output=False)
    assert not progress_enabled(quiet=False, json_output=True)


def test_quiet_and_verbose_exclude_each_other():
    args = build_parser().parse_args(["compress", "-v"])
    assert args.verbose and not args.quiet
    with pytest.raises(Exception, match="not allowed with"):
        build_parser().parse_args(["-q", "-v", "compress"])
