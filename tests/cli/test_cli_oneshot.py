"""Wanda/SparseGPT recipes end to end on a tiny Llama: bitmask artifact, report; bad inputs."""

from __future__ import annotations

import json

import pytest

SMALL = ["num_samples=8", "seq_len=32"]


@pytest.mark.parametrize(
    ("recipe", "step", "check"),
    [("wanda-50", "prune-wanda", "row"), ("sparsegpt-2:4", "prune-sparsegpt", "2:4")],
)
def test_oneshot_artifact_is_sparse_loads_and_reports(
    recipe, step, check, tmp_path, tiny_llama128, lm_corpus, cli, fast, check_artifact
):
    import torch

    import nlpress

    out = tmp_path / "out"
    sets = [f"--set={step}.{kv}" for kv in SMALL]
    args = ["compress", "--model", tiny_llama128, "--data", lm_corpus, "--calib", lm_corpus]
    r = cli(*args, "--recipe", recipe, *sets, "--out", out, *fast)
    assert r.rc == 0, r.err
    metrics = check_artifact(out, "model.safetensors")
    meta = json.loads((out / "nlpress.json").read_text())
    assert meta["weights_format"] == "bitmask"
    pr = metrics["pruning"]
    assert pr["steps"][0]["sparsity"] == 0.5 and len(pr["per_layer"]) == 14
    assert pr["steps"][0]["calibration_source"] == str(lm_corpus)
    assert "no faster kernel" in pr["warnings"][0]
    report = (out / "report.md").read_text()
    assert "## Pruning" in report and "no faster kernel" in report
    assert metrics["result"]["fidelity"]["top1_agreement"] > 0.5
    model = nlpress.load(out).module.model
    w = model.model.layers[1].mlp.down_proj.weight.detach()  # (128, 256)
    if check == "row":
        assert ((w == 0).sum(1) == 128).all()
    else:
        assert ((w != 0).reshape(128, -1, 4).sum(-1) == 2).all()
    ref = nlpress.load(tiny_llama128).module.model  # outside the blocks: untouched
    assert torch.equal(model.lm_head.weight, ref.lm_head.weight)
    assert not torch.equal(
        model.model.layers[0].self_attn.q_proj.weight, ref.model.layers[0].self_attn.q_proj.weight
    )


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        (["--recipe", "wanda-50", "--set=prune-wanda.n=2"], "both n and m"),
        (["--recipe", "wanda-2:4", "--set=prune-wanda.m=5"], "not divisible by m=5"),
        (["--recipe", "sparsegpt-2:4", "--set=prune-sparsegpt.block_size=6"], "block_size 6"),
        (["--recipe", "wanda-50", "--set=prune-wanda.ignore=['re:.*']"], "no linear layer"),
        (["--recipe", "sparsegpt-50", "--calib", "{empty}"], "empty"),
        (
            ["--recipe", "wanda-50", "--calib", "{short}", "--set=prune-wanda.seq_len=512"],
            "fewer than one window",
        ),
        (["--recipe", "wanda-50", "--set=prune-wanda.sparsity=1.0"], "sparsity"),
    ],
    ids=[
        "n-without-m",
        "m-divides",
        "block-size",
        "no-linears",
        "calib-empty",
        "calib-short",
        "s1",
    ],
)
def test_bad_oneshot_input_writes_nothing(extra, word, rejects_lm_compress):
    rejects_lm_compress(extra, word)
