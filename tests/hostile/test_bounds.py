"""Class 3: what input can make nlpress allocate or print is bounded, and sizes are checked
before anything is built: alias bombs, huge labels, absurd config sizes, huge batches."""

from __future__ import annotations

import json
import time

import pytest


def _bomb(levels: int = 9, width: int = 10) -> tuple[str, str]:
    """(anchor lines, the name of the top alias) of a "billion laughs" YAML."""
    lines = ["x0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines), f"*a{levels - 1}"


def _recipe_with_bomb(where: str) -> str:
    anchors, top = _bomb()
    # the anchors sit under a key the recipe does not know; the bomb is referenced from `where`
    if where == "name":
        return f"{anchors}\nname: {top}\nsteps:\n  - export-onnx: {{}}\n"
    if where == "version":
        return f"{anchors}\nversion: {top}\nsteps:\n  - export-onnx: {{}}\n"
    if where == "step":
        return f"{anchors}\nsteps:\n  - export-onnx: {{opset: {top}}}\n"
    return f"{anchors}\nsteps: {top}\n"


@pytest.mark.parametrize("where", ["name", "version", "step", "steps"])
def test_yaml_alias_bomb_is_refused_fast_and_briefly(
    where, tmp_path, cli, tiny_classifier, fast, user_error
):
    rcp = tmp_path / "bomb.yaml"
    rcp.write_text(_recipe_with_bomb(where))
    t0 = time.perf_counter()
    r = cli("compress", "--model", tiny_classifier, "--recipe", rcp, "--out", tmp_path / "o", *fast)
    assert time.perf_counter() - t0 < 20
    user_error(r, "expands to more than")
    assert len(r.err) < 1000, len(r.err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "text, word",
    [
        ("a: &a [*a]\nsteps: [export-onnx]\n", "refers to itself"),
        ("steps: " + "[" * 100 + "]" * 100 + "\n", "levels deep"),
        ("steps: " + "[" * 50_000 + "\n", "YAML"),
        ("name: " + "x" * 2_000_000 + "\nsteps: [export-onnx]\n", "1 MB"),
    ],
)
def test_yaml_recipes_nested_deep_or_huge_are_refused(
    text, word, tmp_path, cli, tiny_classifier, fast, user_error
):
    rcp = tmp_path / "r.yaml"
    rcp.write_text(text)
    r = cli("compress", "--model", tiny_classifier, "--recipe", rcp, "--out", tmp_path / "o", *fast)
    user_error(r)
    assert len(r.err) < 1000


def test_set_value_alias_bomb_is_refused(tmp_path, cli, tiny_classifier, fast, user_error):
    anchors, top = _bomb(8)
    value = "{" + anchors.replace("\n", ", ").replace(": &", ": &") + f", y: {top}" + "}"
    r = cli("compress", "--model", tiny_classifier, "--set", f"export-onnx.opset={value}",
            "--out", tmp_path / "o", *fast)  # fmt: skip
    user_error(r)
    assert len(r.err) < 1000


@pytest.mark.parametrize("big", ["1000000000", str(10**30), "10000"])
def test_huge_labels_are_refused_before_allocating(big, tmp_path, cli, tiny_bert, art, user_error):
    data = tmp_path / "big.tsv"
    data.write_text(
        "sentence\tlabel\n" + "".join(f"movie {i}\t{big if i % 2 else 0}\n" for i in range(40))
    )
    r = cli(
        "finetune", "--model", tiny_bert, "--data", data, "--out", tmp_path / "o", "--cpu", "--json"
    )
    user_error(r, "class ids")
    user_error(cli("eval", art, "--data", data), "class ids")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "change, word",
    [
        ({"num_hidden_layers": 1_000_000}, "num_hidden_layers"),
        ({"num_hidden_layers": 1000}, "weights hold"),  # within bounds, but not these weights
        ({"hidden_size": 10**9}, "hidden_size"),
        ({"intermediate_size": -1}, "intermediate_size"),
        ({"vocab_size": 2**40}, "vocab_size"),
        ({"num_hidden_layers": "12"}, "num_hidden_layers"),
        ({"max_position_embeddings": 1e30}, "max_position_embeddings"),
        ({"num_attention_heads": True}, "num_attention_heads"),
    ],
)
def test_config_with_absurd_sizes_is_refused_before_building(
    change, word, model_copy, cli, sst_file, tmp_path, fast, user_error
):
    m = model_copy()
    cfg = json.loads((m / "config.json").read_text())
    cfg.update(change)
    (m / "config.json").write_text(json.dumps(cfg))
    t0 = time.perf_counter()
    user_error(cli("eval", m, "--data", sst_file), word)
    r = cli("compress", "--model", m, "--data", sst_file, "--out", tmp_path / "o", *fast)
    user_error(r, word)
    assert time.perf_counter() - t0 < 60
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--batch-size", "100000"],
        ["--seq-len", "10000000"],
        ["--rounds", "100000"],
        ["--threads", "100000"],
    ],  # fmt: skip
)
def test_bench_sizes_are_bounded(args, art, cli, tiny_classifier, tmp_path, user_error):
    user_error(cli("bench", art, "--no-memory", *args))
    if args[0] != "--threads":
        r = cli(
            "compress", "--model", tiny_classifier, "--out", tmp_path / "o", "--no-memory", *args
        )
        user_error(r)
        assert not (tmp_path / "o").exists()


def test_api_bench_config_is_bounded():
    from nlpress.bench.harness import BenchConfig
    from nlpress.errors import NlpressError

    with pytest.raises(NlpressError, match="at most"):
        BenchConfig(batch_size=100_000)


def test_error_messages_never_quote_megabytes(tmp_path, cli, tiny_classifier, fast, user_error):
    rcp = tmp_path / "r.yaml"
    rcp.write_text("name: x\nsteps:\n  - export-onnx: {opset: '" + "9" * 500_000 + "'}\n")
    r = cli("compress", "--model", tiny_classifier, "--recipe", rcp, "--out", tmp_path / "o", *fast)
    user_error(r, "opset")
    assert len(r.err) < 1000
