"""Class 4: user errors that used to end in a traceback (exit 1): one ``error:`` line, exit 2."""

from __future__ import annotations

import json
import pickle

import pytest

DEEP = "[" * 200_000 + "]" * 200_000


@pytest.mark.parametrize(
    "text", ["[1, 2]", "null", '"x"', "{bad", DEEP, "\xff\xfe", '{"a": ' * 5000]
)
def test_broken_config_json(text, model_copy, cli, sst_file, tmp_path, fast, user_error):
    m = model_copy()
    (m / "config.json").write_text(text, errors="surrogateescape")
    user_error(cli("eval", m, "--data", sst_file), "config.json")
    r = cli("compress", "--model", m, "--data", sst_file, "--out", tmp_path / "o", *fast)
    user_error(r, "config.json")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "modules, pooling",
    [
        ("{bad", None),
        ("[1, 2]", None),
        ('{"type": "x"}', None),
        (DEEP, None),
        ('[{"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}]', "{bad"),
        ('[{"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}]', "[1]"),
        ('[{"type": "sentence_transformers.models.Pooling", "path": "../.."}]', None),
        ('[{"type": 5}]', None),
    ],
)
def test_broken_sentence_transformers_files(
    modules, pooling, tiny_bert, model_copy, cli, user_error
):
    m = model_copy("st", tiny_bert)
    (m / "modules.json").write_text(modules)
    if pooling is not None:
        (m / "1_Pooling").mkdir()
        (m / "1_Pooling" / "config.json").write_text(pooling)
    user_error(cli("eval", m, "--task", "sentence-embedding"))


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_data_nested_200000_deep(suffix, art, cli, tmp_path, tiny_classifier, fast, user_error):
    data = tmp_path / f"deep{suffix}"
    data.write_text(DEEP + "\n")
    user_error(cli("eval", art, "--data", data), "nested too deeply")
    sst = tmp_path / "ok.tsv"
    sst.write_text("sentence\tlabel\ngood movie\t1\nbad movie\t0\n")
    r = cli("compress", "--model", tiny_classifier, "--data", sst, "--recipe", "int8-static",
            "--calib", data, "--out", tmp_path / "o", *fast)  # fmt: skip
    user_error(r, "nested too deeply")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "recipe, sets, word",
    [
        ("steps:\n  - export-onnx: {1: 2}\n", [], "not a name"),
        ("steps:\n  - {export-onnx: {}, ort-optimize: {}}\n", ["1.opset=17"], "step 1"),
        ("steps: 5\n", ["export-onnx.opset=17"], "steps"),
        ("steps:\n  - {}\n", ["export-onnx.opset=17"], "step 1"),
        ("steps:\n  - [1, 2]\n", ["1.a=1"], "step 1"),
        ("steps:\n  - 7\n", [], "step 1"),
        ("steps:\n  - export-onnx: {opset: 17}\n", ["export-onnx.opset=[unclosed"], "YAML"),
        ("steps:\n  - {null: {}}\n", [], "unknown step"),
        ("{1: 2}\n", [], "unknown key"),
        ("version: [1]\nsteps: [export-onnx]\n", [], "version"),
        ("name: {a: 1}\nsteps: [export-onnx]\n", [], "name"),
    ],
)
def test_broken_recipes_and_sets(
    recipe, sets, word, tmp_path, cli, tiny_classifier, fast, user_error
):
    rcp = tmp_path / "r.yaml"
    rcp.write_text(recipe)
    extra = [x for s in sets for x in ("--set", s)]
    r = cli(
        "compress",
        "--model",
        tiny_classifier,
        "--recipe",
        rcp,
        *extra,
        "--out",
        tmp_path / "o",
        *fast,
    )
    user_error(r, word)
    assert not (tmp_path / "o").exists()


def _damage_onnx(art, how):
    f = art / "model.onnx"
    data = f.read_bytes()
    if how == "truncated":
        f.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        f.write_bytes(b"\x07garbage" * (len(data) // 8) + b"\x00" * (len(data) % 8))
    elif how == "missing":
        f.unlink()
    elif how == "empty":
        f.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "garbage", "missing", "empty"])
def test_broken_model_onnx(how, art, cli, sst_file, fast, user_error):
    import nlpress
    from nlpress.errors import NlpressError

    _damage_onnx(art, how)
    user_error(cli("eval", art, "--data", sst_file), "model.onnx")
    user_error(cli("bench", art, *fast), "model.onnx")
    with pytest.raises(NlpressError, match="model.onnx"):
        nlpress.load(art)


def test_garbage_model_onnx_without_a_file_list(art):
    """Without the recorded sizes (an older artifact), ONNX Runtime's own refusal is the error."""
    import nlpress
    from nlpress.errors import NlpressError

    meta = json.loads((art / "nlpress.json").read_text())
    del meta["files"]
    (art / "nlpress.json").write_text(json.dumps(meta))
    _damage_onnx(art, "garbage")
    with pytest.raises(NlpressError, match="damaged"):
        nlpress.load(art)


@pytest.mark.parametrize(
    "edit, word",
    [
        (lambda m: m.pop("task"), "task"),
        (lambda m: m.update(task="translation"), "task"),
        (lambda m: m.update(backend="tensorrt"), "backend"),
        (lambda m: m.update(input_names=["pixels"]), "input_names"),
        (lambda m: m.update(input_names="input_ids"), "input_names"),
        (lambda m: m.update(input_names=["input_ids"]), "inputs"),  # the graph wants more
        (lambda m: m.update(max_length="long"), "max_length"),
        (lambda m: m.update(max_length=10**12), "max_length"),
        (lambda m: m.update(id2label=["a", "b"]), "id2label"),
        (lambda m: m.update(id2label={"x": "a"}), "id2label"),
        (lambda m: m.update(id2label={"0": {"a": 1}}), "id2label"),
        (lambda m: m.update(model_file=None), "model file"),
        (lambda m: m.update(model_file=5), "model file"),
        (lambda m: m.update(pooling="max"), "pooling"),
        (lambda m: m.update(files=[1]), "files"),
        (lambda m: m.update(format_version=[1]), "incompatible"),
    ],
)
def test_broken_nlpress_json_fields(edit, word, art, cli, sst_file, user_error):
    meta = json.loads((art / "nlpress.json").read_text())
    edit(meta)
    (art / "nlpress.json").write_text(json.dumps(meta))
    user_error(cli("eval", art, "--data", sst_file), word)


@pytest.mark.parametrize("text", ["[1, 2]", "null", "{bad", DEEP, ""])
def test_nlpress_json_that_is_not_an_object(text, art, cli, sst_file, user_error):
    (art / "nlpress.json").write_text(text)
    user_error(cli("eval", art, "--data", sst_file), "nlpress.json")


@pytest.mark.parametrize("where", ["artifact", "model"])
@pytest.mark.parametrize("how", ["truncated", "garbage", "deep"])
def test_broken_tokenizer_json(where, how, art, model_copy, cli, sst_file, user_error):
    folder = art if where == "artifact" else model_copy()
    f = folder / "tokenizer.json"
    if not f.exists():
        pytest.skip("this tokenizer was saved without tokenizer.json")
    if how == "truncated":
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif how == "garbage":
        f.write_text("{not json at all")
    else:
        f.write_text(DEEP)
    if where == "artifact":  # what a hand repair would do: the file list updated to match
        from nlpress.artifact import seal

        seal(folder)
    user_error(cli("eval", folder, "--data", sst_file), "tokenizer")


def test_out_dangling_symlink_is_refused_before_the_run(
    tmp_path, cli, tiny_classifier, fast, user_error
):
    link = tmp_path / "o"
    link.symlink_to(tmp_path / "nowhere")
    r = cli("compress", "--model", tiny_classifier, "--out", link, *fast)
    user_error(r, "symlink")
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_out_in_an_unwritable_folder_is_refused_before_the_run(
    tmp_path, cli, tiny_classifier, fast, user_error, monkeypatch
):
    import tempfile

    from nlpress import session  # compress() reads the recipe there, after the output check

    def refuse(*a, **k):
        raise PermissionError(1, "Operation not permitted")

    ran = []
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)  # what an immutable folder does (root too)
    monkeypatch.setattr(session, "load_recipe", lambda *a, **k: ran.append(1))
    r = cli("compress", "--model", tiny_classifier, "--out", tmp_path / "o", *fast)
    user_error(r, "cannot write")
    assert not ran, "the run started before the output folder was checked"


def test_out_whose_parent_is_a_file(tmp_path, cli, tiny_classifier, fast, user_error):
    (tmp_path / "f").write_text("x")
    user_error(cli("compress", "--model", tiny_classifier, "--out", tmp_path / "f" / "o", *fast))


@pytest.mark.parametrize("label", ["-1", "-100"])
def test_negative_training_label(label, tmp_path, cli, tiny_bert, user_error):
    data = tmp_path / "t.tsv"
    data.write_text(
        "sentence\tlabel\n" + "".join(f"movie {i}\t{label if i % 2 else 1}\n" for i in range(40))
    )
    r = cli(
        "finetune", "--model", tiny_bert, "--data", data, "--out", tmp_path / "o", "--cpu", "--json"
    )
    user_error(r, "label")


@pytest.mark.parametrize("n", ["100000", "129", "4"])
def test_max_length_out_of_range(n, tmp_path, cli, tiny_bert, train_tsv, user_error):
    r = cli("finetune", "--model", tiny_bert, "--data", train_tsv, "--out", tmp_path / "o",
            "--max-length", n, "--cpu", "--json")  # fmt: skip
    user_error(r, "--max-length")
    assert not (tmp_path / "o").exists()


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_finetune_on_a_folder_with_a_pickle_file(
    tmp_path, model_copy, cli, train_tsv, user_error, monkeypatch
):
    m = model_copy()
    (m / "model.safetensors").unlink()
    with open(m / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": _Payload()}, f)
    monkeypatch.chdir(tmp_path)
    for cmd in (
        ["finetune", "--model", m, "--data", train_tsv, "--out", tmp_path / "o", "--cpu", "--json"],
        ["eval", m, "--data", train_tsv],
    ):
        user_error(cli(*cmd))
        assert not (tmp_path / "PWNED").exists()


def _fake_checkpoint(tmp_path, files: dict):
    from nlpress.train.loop import MARKER

    ck = tmp_path / "o.checkpoints"
    (ck / "last").mkdir(parents=True)
    (ck / MARKER).write_text("{}")
    for name, data in files.items():
        (ck / "last" / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    return ck


_STATE = json.dumps({"step": 1, "epoch": 0, "step_in_epoch": 1, "bad_evals": 0, "best": None,
                     "history": [], "evals": []})  # fmt: skip


@pytest.mark.parametrize(
    "files, word",
    [
        ({"trainer.json": "{bad"}, "checkpoint"),
        ({"trainer.json": "[1]"}, "checkpoint"),
        ({"trainer.json": '{"step": "x", "epoch": 0, "step_in_epoch": 0}'}, "checkpoint"),
        ({"trainer.json": '{"stepz": 1}'}, "checkpoint"),
        ({"trainer.json": _STATE}, "checkpoint"),  # no weights, optimizer or scheduler at all
        (
            {
                "trainer.json": _STATE,
                "model.safetensors": b"garbage",
                "optimizer.bin": b"x",
                "scheduler.bin": b"y",
            },
            "checkpoint",
        ),  # fmt: skip
        ({"trainer.json": json.dumps({**json.loads(_STATE), "settings": {"lr": 1.0}})}, "lr"),
    ],
)
def test_resume_from_a_broken_checkpoint(
    files, word, tmp_path, cli, tiny_bert, train_tsv, tree, user_error
):
    ck = _fake_checkpoint(tmp_path, files)
    before = tree(ck)
    r = cli("finetune", "--model", tiny_bert, "--data", train_tsv, "--out", tmp_path / "o",
            "--resume", "--epochs", "1", "--batch-size", "8", "--cpu", "--json")  # fmt: skip
    user_error(r, word)
    assert tree(ck) == before and not (tmp_path / "o").exists()


@pytest.mark.parametrize("text", ["[1, 2]", "null", "{bad", DEEP, '"x"'])
def test_tune_study_file_that_is_not_an_object(
    text, tmp_path, cli, tiny_classifier, sst_file, tree, user_error
):
    out = tmp_path / "tuned"
    out.mkdir()
    (out / "study.json").write_text(text)
    before = tree(out)
    user_error(cli("tune", "--model", tiny_classifier, "--data", sst_file, "--out", out), "study")
    assert tree(out) == before
