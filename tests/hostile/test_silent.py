"""Class 2: a loaded model is the model its files describe, or an error; NaN or degenerate
training stops with an error, not an artifact; bad labels, limits and values are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _resave(folder, fn):
    """Rewrite ``folder/model.safetensors`` through ``fn(dict of tensors) -> dict``."""
    from safetensors.torch import load_file, save_file

    f = folder / "model.safetensors"
    save_file(fn(load_file(f)), f, metadata={"format": "pt"})


def _drop_layer(prefix_kept: bool):
    def fn(t):
        out = {}
        for k, v in t.items():
            if "encoder.layer.1." in k:
                continue
            out[k if prefix_kept else k.removeprefix("bert.")] = v
        return out

    return fn


@pytest.mark.parametrize("prefix_kept", [False, True])
@pytest.mark.parametrize("command", ["eval", "compress"])
def test_a_missing_layer_is_an_error(
    prefix_kept, command, model_copy, cli, sst_file, tmp_path, fast, user_error
):
    m = model_copy()
    _resave(m, _drop_layer(prefix_kept))
    if command == "eval":
        r = cli("eval", m, "--data", sst_file)
    else:
        r = cli("compress", "--model", m, "--data", sst_file, "--out", tmp_path / "o", *fast)
    user_error(r, "lack")
    assert not (tmp_path / "o").exists()


def test_a_missing_layer_is_an_error_for_finetune(model_copy, cli, train_tsv, tmp_path, user_error):
    m = model_copy()
    _resave(m, _drop_layer(False))
    r = cli("finetune", "--model", m, "--data", train_tsv, "--out", tmp_path / "o", "--cpu",
            "--epochs", "1", "--batch-size", "8", "--json")  # fmt: skip
    user_error(r, "lack")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("dtype", ["int32", "int64", "int8"])
def test_float_weights_stored_as_ints_are_an_error(dtype, model_copy, cli, sst_file, user_error):
    import torch

    m = model_copy()
    _resave(m, lambda t: {k: (v * 100).to(getattr(torch, dtype)) if v.is_floating_point() else v
                          for k, v in t.items()})  # fmt: skip
    user_error(cli("eval", m, "--data", sst_file), "not as floats")


@pytest.mark.parametrize(
    "remove",
    [
        ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"),
        ("vocab.txt", "tokenizer.json"),
    ],
)
def test_a_model_folder_without_tokenizer_files_is_an_error(
    remove, model_copy, cli, sst_file, tmp_path, fast, user_error
):
    m = model_copy()
    for name in remove:
        (m / name).unlink(missing_ok=True)
    user_error(cli("eval", m, "--data", sst_file), "tokenizer")
    r = cli("compress", "--model", m, "--data", sst_file, "--out", tmp_path / "o", *fast)
    user_error(r, "tokenizer")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("remove", ["vocab.txt", "tokenizer.json", "tokenizer_config.json"])
def test_an_artifact_without_its_tokenizer_files_is_an_error(
    remove, art, cli, sst_file, user_error
):
    if (art / remove).exists():
        (art / remove).unlink()
        user_error(cli("eval", art, "--data", sst_file), remove)


@pytest.mark.parametrize(
    "args, word",
    [
        (["--lr", "inf"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "1e38"], "--lr"),  # finite, but AdamW's steps would overflow float32
    ],
)
def test_nan_training_stops_with_an_error(
    args, word, cli, tiny_bert, train_tsv, tmp_path, user_error
):
    r = cli("finetune", "--model", tiny_bert, "--data", train_tsv, "--out", tmp_path / "o",
            "--epochs", "2", "--batch-size", "8", "--cpu", "--json", *args)  # fmt: skip
    line = user_error(r)
    assert word in line or "non-finite" in line, line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("poison", ["loss", "weights"])
def test_nan_loss_or_weights_stop_training(
    poison, cli, tiny_bert, train_tsv, tmp_path, user_error, monkeypatch
):
    """A loss that turns NaN mid-run, or weights that do (with a finite loss): no artifact."""
    import torch

    from nlpress.train import loop

    real, calls = loop._one_step, {"n": 0}

    def step(acc, module, *a, **k):
        loss, logs = real(acc, module, *a, **k)
        calls["n"] += 1
        if calls["n"] == 2:
            if poison == "loss":
                return float("nan"), logs
            with torch.no_grad():
                next(iter(module.parameters())).fill_(float("nan"))
        return loss, logs

    monkeypatch.setattr(loop, "_one_step", step)
    r = cli("finetune", "--model", tiny_bert, "--data", train_tsv, "--out", tmp_path / "o",
            "--epochs", "1", "--batch-size", "8", "--eval-split", "0", "--cpu", "--json")  # fmt: skip
    line = user_error(r)
    assert (
        ("loss became nan" in line) if poison == "loss" else ("non-finite" in line or "nan" in line)
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("label", ["1", "positive"])
def test_one_class_training_data_is_an_error(label, cli, tiny_bert, tmp_path, user_error):
    data = tmp_path / "one.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"good movie {i}\t{label}\n" for i in range(40)))
    r = cli(
        "finetune", "--model", tiny_bert, "--data", data, "--out", tmp_path / "o", "--cpu", "--json"
    )
    user_error(r, "same label")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("score", ["nan", "inf", "-inf", "1e999"])
def test_sts_scores_that_are_not_finite_are_an_error(score, cli, tiny_bert, tmp_path, user_error):
    data = tmp_path / "sts.tsv"
    data.write_text(
        "sentence1\tsentence2\tscore\n"
        "a man is playing\ta man plays\t4.5\n"
        f"a cat sat\ta dog sat\t{score}\n"
    )
    user_error(cli("eval", tiny_bert, "--data", data), "finite")


@pytest.mark.parametrize("label", ["-1", "-7"])
def test_negative_evaluation_labels_are_an_error(label, art, cli, tmp_path, user_error):
    data = tmp_path / "neg.tsv"
    data.write_text(f"sentence\tlabel\ngood movie\t1\nbad movie\t{label}\n")
    user_error(cli("eval", art, "--data", data), "label")


@pytest.mark.parametrize("limit", ["0", "-5", "x"])
def test_limit_that_is_not_positive_is_an_error(
    limit, art, cli, sst_file, tiny_bert, tmp_path, fast, user_error
):
    user_error(cli("eval", art, "--data", sst_file, "--limit", limit), "--limit")
    user_error(cli("bench", art, "--limit", limit, *fast), "--limit")
    r = cli("compress", "--model", tiny_bert, "--limit", limit, "--out", tmp_path / "o", *fast)
    user_error(r, "--limit")
    r = cli("finetune", "--model", tiny_bert, "--data", sst_file, "--limit", limit,
            "--out", tmp_path / "o", "--cpu")  # fmt: skip
    user_error(r, "--limit")


def test_limit_that_is_not_positive_is_an_error_in_the_api(art, sst_file):
    from nlpress.errors import NlpressError
    from nlpress.evaluate.api import evaluate

    for limit in (0, -5):
        with pytest.raises(NlpressError, match="limit"):
            evaluate(art, sst_file, limit=limit)


@pytest.mark.parametrize(
    "row",
    [
        {"text": {"a": 1}, "label": 1},
        {"text": ["good", "movie"], "label": 1},
        {"text": "good", "label": [1]},
        {"text": "good", "label": {"x": 1}},
    ],
)
def test_jsonl_values_that_are_objects_or_lists_are_an_error(row, art, cli, tmp_path, user_error):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "fine", "label": 0}) + "\n" + json.dumps(row) + "\n")
    user_error(cli("eval", art, "--data", data), "line 2")


def test_encode_of_one_string_is_one_text(tiny_bert, cls_artifact):
    import nlpress

    m = nlpress.load(tiny_bert)
    one = m.encode("a man is playing the guitar")
    assert one.shape[0] == 1
    np.testing.assert_allclose(one[0], m.encode(["a man is playing the guitar"])[0], atol=1e-6)
    p = nlpress.load(cls_artifact).predict("a good movie")
    assert len(p.labels) == 1


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl", ".json"])
def test_causal_lm_eval_on_a_table_is_an_error(suffix, tiny_llama, cli, tmp_path, user_error):
    data = tmp_path / f"d{suffix}"
    data.write_text("sentence\tlabel\nthe cat sat on the mat\t1\n")
    user_error(cli("eval", tiny_llama, "--data", data), "plain text")
