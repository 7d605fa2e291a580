"""Weight-only recipes end to end on a tiny Llama: artifact, load, generate; bad inputs write nothing."""

from __future__ import annotations

import numpy as np
import pytest

WO = "quantize-weight-only"
SMALL = [f"--set={WO}.num_samples=8", f"--set={WO}.seq_len=32"]


@pytest.mark.parametrize("recipe", ["int4-gptq", "int4-awq"])
def test_calibrated_int4_artifact_loads_and_generates(
    recipe, tmp_path, tiny_llama128, lm_corpus, cli, fast, check_artifact
):
    import nlpress

    out = tmp_path / recipe
    args = ["compress", "--model", tiny_llama128, "--data", lm_corpus, "--calib", lm_corpus]
    r = cli(*args, "--recipe", recipe, *SMALL, "--out", out, *fast)
    assert r.rc == 0, r.err
    metrics = check_artifact(out, "model.safetensors")
    res, base = metrics["result"], metrics["baseline"]
    assert res["decode_tokens_per_s"] > 0 and base["prefill_tokens_per_s"] > 0
    assert "decode_speedup" in metrics["ratios"]
    assert metrics["steps"][0]["info"]["calibration_source"] == str(lm_corpus)
    # a tiny random model quantized to int4: perplexity moves by a little, not a lot
    assert abs(res["quality"]["perplexity"] / base["quality"]["perplexity"] - 1) < 0.05
    assert res["fidelity"]["top1_agreement"] > 0.9
    assert metrics["ratios"]["size_fraction"] < 0.5
    m = nlpress.load(out)
    ref = nlpress.load(tiny_llama128)
    text = lm_corpus.read_text()[:400]
    assert m.perplexity(text) == pytest.approx(res["quality"]["perplexity"], rel=0.3)
    out_text = m.generate("the movie was", max_new_tokens=6)
    assert isinstance(out_text, str)
    # greedy generation with the cache equals a plain argmax loop without it
    ids = np.asarray(ref.tokenizer("the cat sat", return_tensors="np")["input_ids"])
    from nlpress.runtime.generate import generate_ids

    seq, manual = ids, []
    for _ in range(5):
        nxt = int(ref.next_token_logits(seq)[0, -1].argmax())
        manual.append(nxt)
        seq = np.concatenate([seq, [[nxt]]], axis=1)
    assert (
        generate_ids(ref, ids, 5).tolist()[: len(manual)]
        == manual[: len(generate_ids(ref, ids, 5))]
    )


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        (["--recipe", "int4-gptq", "--calib", "{empty}"], "empty"),
        (
            ["--recipe", "int4-gptq", "--calib", "{short}", f"--set={WO}.seq_len=512"],
            "fewer than one window",
        ),
        (["--recipe", "int4-rtn", f"--set={WO}.group_size=96"], "does not divide"),
        (["--recipe", "int4-rtn", f"--set={WO}.bits=3"], "bits"),
        (["--recipe", "int4-rtn", f"--set={WO}.ignore=['re:.*']"], "no linear layers"),
        (["--recipe", "int4-rtn", "--calib", "{short}"], "--calib"),
    ],
    ids=["calib-empty", "calib-too-small", "group", "bits", "no-linears", "calib-unused"],
)
def test_bad_weight_only_input_writes_nothing(extra, word, rejects_lm_compress):
    rejects_lm_compress(extra, word)


def test_generate_needs_a_causal_lm(tiny_bert):
    import nlpress
    from nlpress.errors import NlpressError

    with pytest.raises(NlpressError, match="causal-lm"):
        nlpress.load(tiny_bert).generate("hello")
