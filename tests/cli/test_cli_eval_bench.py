"""``nlpress eval`` and ``nlpress bench`` on an artifact and on model folders."""

from __future__ import annotations

import pytest

import nlpress


@pytest.fixture(scope="module")
def cls_artifact(tiny_classifier, tmp_path_factory):
    """An int8 artifact of the tiny classifier, built on the built-in sentences (no labels)."""
    from nlpress.bench.harness import BenchConfig

    out = tmp_path_factory.mktemp("eval-bench") / "cls"
    nlpress.compress(
        tiny_classifier,
        "text-classification",
        None,
        "int8",
        out,
        limit=16,
        bench=BenchConfig(rounds=1, seq_len=16, progress=False),
        memory=False,
        progress=False,
    )
    return out


def test_eval_artifact_gives_accuracy(cls_artifact, sst_file, cli):
    r = cli("eval", cls_artifact, "--data", sst_file, "--json")
    assert r.rc == 0, r.err
    res = r.json()
    assert res["task"] == "text-classification" and res["backend"] == "onnxruntime"
    assert 0 <= res["quality"]["accuracy"] <= 100
    assert res["data"] == {"source": str(sst_file), "n": 8}
    assert "fidelity" not in res


def test_eval_text_output(cls_artifact, sst_file, cli):
    r = cli("eval", cls_artifact, "--data", sst_file)
    assert r.rc == 0, r.err
    assert "accuracy" in r.out and "(8 rows)" in r.out


def test_eval_vs_gives_fidelity(cls_artifact, tiny_classifier, sst_file, cli):
    r = cli("eval", cls_artifact, "--data", sst_file, "--vs", tiny_classifier, "--json")
    assert r.rc == 0, r.err
    res = r.json()
    assert "accuracy" in res["quality"]
    assert 0.75 <= res["fidelity"]["top1_agreement"] <= 1.0
    assert res["fidelity"]["kl_mean"] >= 0


def test_eval_unlabelled_data_needs_vs(cls_artifact, tiny_classifier, tmp_path, cli):
    data = tmp_path / "nolabels.tsv"
    data.write_text("sentence\nthe movie was great fun\na terrible boring plot\n")
    r = cli("eval", cls_artifact, "--data", data)
    assert r.rc == 2 and r.out == ""
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("error:")
    assert "--vs" in r.err
    r = cli("eval", cls_artifact, "--data", data, "--vs", tiny_classifier, "--json")
    assert r.rc == 0, r.err
    res = r.json()
    assert res["quality"] == {} and "top1_agreement" in res["fidelity"]


def test_eval_model_folders(tiny_bert, tiny_llama, sts_file, lm_text, cli):
    r = cli("eval", tiny_bert, "--data", sts_file, "--json")
    assert r.rc == 0, r.err
    assert "spearman" in r.json()["quality"]
    r = cli("eval", tiny_llama, "--data", lm_text, "--json")
    assert r.rc == 0, r.err
    assert r.json()["quality"]["perplexity"] > 1


def test_bench_one_model(cls_artifact, cli):
    r = cli("bench", cls_artifact, "--rounds", "1", "--no-memory", "--json")
    assert r.rc == 0, r.err
    res = r.json()
    assert list(res["results"]) == ["model"]
    row = res["results"]["model"]
    assert row["backend"] == "onnxruntime" and row["path"] == str(cls_artifact)
    assert row["latency_p50_ms"] > 0 and row["throughput"] > 0 and row["size_bytes"] > 0
    assert "ratios" not in res


def test_bench_vs_gives_ratios(cls_artifact, tiny_classifier, sst_file, cli):
    r = cli(
        "bench",
        cls_artifact,
        "--vs",
        tiny_classifier,
        "--data",
        sst_file,
        "--rounds",
        "1",
        "--seq-len",
        "16",
        "--no-memory",
        "--json",
    )
    assert r.rc == 0, r.err
    res = r.json()
    assert set(res["results"]) == {"model", "vs"}
    assert res["results"]["vs"]["backend"] == "pytorch"
    assert all(res["results"][k]["seq_len"] == 16 for k in ("model", "vs"))
    ratios = res["ratios"]
    assert set(ratios) == {"throughput_speedup", "latency_speedup", "size_fraction"}
    assert all(v > 0 for v in ratios.values())
    assert ratios["size_fraction"] < 1  # int8 vs fp32


def test_bench_text_output(cls_artifact, tiny_classifier, cli):
    r = cli(
        "bench",
        cls_artifact,
        "--vs",
        tiny_classifier,
        "--rounds",
        "1",
        "--seq-len",
        "16",
        "--no-memory",
    )
    assert r.rc == 0, r.err
    assert "p50 ms" in r.out and "model vs --vs:" in r.out
