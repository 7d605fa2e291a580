"""Class 6: the smaller things of issue 11."""

from __future__ import annotations

import pytest


def test_set_yaml_error_is_one_line(tmp_path, cli, tiny_classifier, fast, user_error):
    for bad in ("[unclosed", "{a: 1", "a: b: c", "'open", "@x", "\t- x"):
        r = cli("compress", "--model", tiny_classifier, "--set", f"export-onnx.opset={bad}",
                "--out", tmp_path / "o", *fast)  # fmt: skip
        user_error(r)


def test_any_multi_line_error_prints_one_line(cli, monkeypatch, user_error):
    from nlpress.errors import NlpressError
    from nlpress.train import commands

    def boom(a):
        raise NlpressError("first\nsecond\n\nthird " + "x" * 5000)

    monkeypatch.setattr(commands, "cmd_finetune", boom)
    line = user_error(cli("finetune", "--out", "x"))
    assert "first second third" in line and len(line) <= 1010


def test_group_size_error_names_a_real_key():
    import torch

    from nlpress.errors import NlpressError
    from nlpress.quantize.primitives import QuantSpec, _group_view

    with pytest.raises(NlpressError) as e:
        _group_view(torch.zeros(4, 48), QuantSpec(bits=4, granularity="group", group_size=32))
    assert "granularity" not in str(e.value) and "group_size" in str(e.value)


@pytest.mark.parametrize("rounds", ["0", "-1"])
def test_distill_rounds_zero_is_refused_like_compress(
    rounds, tmp_path, cli, tiny_classifier, train_tsv, user_error
):
    r = cli("distill", "--teacher", tiny_classifier, "--student-layers", "1", "--data", train_tsv,
            "--out", tmp_path / "s", "--rounds", rounds, "--cpu", "--json")  # fmt: skip
    user_error(r, "--rounds")


def test_finetune_interrupted_ends_with_the_interrupted_line(
    tmp_path, cli, tiny_bert, train_tsv, monkeypatch
):
    from nlpress.train import loop

    real, calls = loop._one_step, {"n": 0}

    def stop(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loop, "_one_step", stop)
    r = cli("finetune", "--model", tiny_bert, "--data", train_tsv, "--out", tmp_path / "o",
            "--epochs", "1", "--batch-size", "8", "--cpu")  # fmt: skip
    assert r.rc == 130
    assert r.err.rstrip().splitlines()[-1] == "interrupted: nothing was written", r.err[-500:]
    assert not (tmp_path / "o").exists()


def test_resume_with_other_settings_is_refused(
    tmp_path, cli, tiny_bert, train_tsv, user_error, monkeypatch
):
    """A real checkpoint, resumed with another --lr / --batch-size / --seed: an error."""
    from nlpress.train import loop

    real, calls = loop._one_step, {"n": 0}

    def stop(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    base = ["finetune", "--model", tiny_bert, "--data", train_tsv, "--out", tmp_path / "o",
            "--epochs", "1", "--batch-size", "8", "--checkpoint-every", "1", "--cpu", "--json"]  # fmt: skip
    monkeypatch.setattr(loop, "_one_step", stop)
    assert cli(*base).rc == 130
    monkeypatch.setattr(loop, "_one_step", real)
    for extra, word in (
        (["--lr", "1e-3"], "lr"),
        (["--seed", "3"], "seed"),
        (["--max-length", "64"], "max_length"),
    ):
        user_error(cli(*base, "--resume", *extra), word)
    assert cli(*base, "--resume").rc == 0
    assert not (tmp_path / "o.checkpoints").exists()  # nlpress made it, so nlpress removed it
