"""select-backend: the choice rule alone, and the int8-auto recipe end to end on a tiny model."""

from __future__ import annotations

import json

import pytest

from nlpress.bench.select import choose, meets_bar
from nlpress.errors import NlpressError
from nlpress.recipe import SelectBackendConfig


def _row(tput: float, **fid) -> dict:
    return {"throughput": tput, "fidelity": fid}


EMB = {
    "fast-bad": _row(300.0, cosine_mean=0.990, cosine_min=0.97),
    "mid-good": _row(200.0, cosine_mean=0.996, cosine_min=0.985),
    "slow-best": _row(100.0, cosine_mean=0.9996, cosine_min=0.9989),
}


def test_fastest_that_meets_the_bar_wins():
    assert choose("sentence-embedding", EMB, SelectBackendConfig()) == ("mid-good", True)


def test_minimum_cosine_is_part_of_the_bar():
    cfg = SelectBackendConfig(min_cosine_min=0.99)
    assert choose("sentence-embedding", EMB, cfg) == ("slow-best", True)


def test_none_passing_keeps_the_most_faithful_or_fails():
    cfg = SelectBackendConfig(min_cosine_mean=0.99999)
    assert choose("sentence-embedding", EMB, cfg) == ("slow-best", False)
    with pytest.raises(NlpressError, match="no candidate meets the fidelity bar"):
        choose("sentence-embedding", EMB, cfg.model_copy(update={"if_none_pass": "error"}))


def test_classifiers_use_top1_agreement():
    rows = {
        "a": _row(2.0, top1_agreement=0.98, kl_mean=0.01),
        "b": _row(1.0, top1_agreement=1.0, kl_mean=0.001),
    }
    assert choose("text-classification", rows, SelectBackendConfig()) == ("b", True)
    assert meets_bar(
        "text-classification", rows["a"]["fidelity"], SelectBackendConfig(min_top1_agreement=0.95)
    )


def test_candidates_are_checked():
    with pytest.raises(ValueError, match="repeat"):
        SelectBackendConfig(candidates=["openvino-int8", "openvino-int8"])
    with pytest.raises(ValueError):
        SelectBackendConfig(candidates=[])


def test_int8_auto_records_the_choice(tiny_classifier, sst_file, tmp_path):
    pytest.importorskip("nncf")
    import nlpress
    from nlpress.bench.harness import BenchConfig

    out = tmp_path / "auto"
    art = nlpress.compress(
        tiny_classifier,
        "text-classification",
        sst_file,
        "int8-auto",
        out,
        # the tiny random classifier's logits nearly tie, so int8 may flip one of 8 predictions
        overrides=["select-backend.min_top1_agreement=0.85", "select-backend.rounds=1"],
        bench=BenchConfig(rounds=1, seq_len=16, progress=False),
        memory=False,
        progress=False,
    )
    (step,) = [s for s in art.metrics["steps"] if s["name"] == "select-backend"]
    info = step["info"]
    assert set(info["candidates"]) == {"onnxruntime-int8", "openvino-int8", "openvino-int8-weights"}
    assert info["winner"] in info["candidates"]
    assert set(info["speedup_vs"]) == set(info["candidates"]) - {info["winner"]}
    assert info["isa"]["int8_kernel"] and info["threads"] >= 1
    for row in info["candidates"].values():
        assert row["throughput"] > 0 and 0 <= row["fidelity"]["top1_agreement"] <= 1
        assert isinstance(row["meets_bar"], bool)
    if info["met_bar"]:  # the fastest of those that met the bar
        passing = [k for k, r in info["candidates"].items() if r["meets_bar"]]
        assert info["winner"] == max(passing, key=lambda k: info["candidates"][k]["throughput"])
    meta = json.loads((out / "nlpress.json").read_text())
    backend = "onnxruntime" if info["winner"] == "onnxruntime-int8" else "openvino"
    assert (
        meta["backend"] == backend and meta["built_on"]["int8_kernel"] == info["isa"]["int8_kernel"]
    )
    assert not (out / "candidates").exists() and not list(out.glob("model.select*"))
    report = (out / "report.md").read_text()
    assert "## Backend selection" in report and info["winner"] in report
    pred = nlpress.load(out)
    assert pred.backend == backend
    assert pred.predict(["the movie was great fun"]).probabilities.shape == (1, 2)
