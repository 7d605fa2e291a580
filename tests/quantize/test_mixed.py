"""Mixed precision on tiny models: the search meets the target it is given, keeps the layers the
ranking names, re-measures the real model, and fails clearly when the target is out of reach."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from nlpress.errors import NlpressError
from nlpress.export.onnx_export import export_onnx
from nlpress.models.loader import load_model
from nlpress.quantize.mixed import candidate_layers, quantize_mixed, split_texts, with_min_fidelity
from nlpress.quantize.sensitivity import rank_keep_one, rank_quantize_one, score_rows
from nlpress.quantize.static import calibration_batches
from nlpress.recipe import (
    ExportOnnxConfig,
    QuantizeDynamicInt8Config,
    QuantizeStaticInt8Config,
    load_recipe,
)
from nlpress.runtime.predictor import torch_predictor_from_loaded

WORDS = "the a movie film great bad cat dog sat mat quick brown fox love hate very good not".split()
# 48 distinct texts of varied length: 24 rank the layers, the other 24 are held out
TEXTS = [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(3 + i % 9)) for i in range(48)]


@pytest.fixture(scope="module")
def exported(tiny_bert, tmp_path_factory):
    lm = load_model(tiny_bert)
    ref = torch_predictor_from_loaded(lm, "fp32", [])
    path = tmp_path_factory.mktemp("mixed") / "e.onnx"
    export_onnx(lm, path, ExportOnnxConfig(), ref.tokenize(TEXTS[:4]))
    return path, ref.tokenize


# embeddings left in fp32: on a random tiny BERT their rounding would swamp the layers' effect
def _cfg(**kw):
    return QuantizeDynamicInt8Config(quantize_embeddings=False, sensitivity_samples=24, **kw)


def _run(exported, tmp_path, cfg, task="sentence-embedding", **kw):
    src, tokenize = exported
    dst = tmp_path / "q.onnx"
    info = quantize_mixed(src, dst, cfg, task=task, texts=TEXTS, tokenize=tokenize, **kw)
    return dst, info


def _holdout_cosine(exported, dst):
    """Independent re-measurement: fp32 and the written model on the held-out texts."""
    from nlpress.runtime.isa import configure_int8_session

    src, tokenize = exported
    _, hold = split_texts(TEXTS, 24, 256)
    outs = []
    for path in (src, dst):
        so = ort.SessionOptions()
        configure_int8_session(so)  # exact int8, as nlpress runs it, on CPUs without VNNI too
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        batches = calibration_batches(hold, tokenize, 32)
        outs.append(np.concatenate([sess.run(None, {n: b[n] for n in names})[0] for b in batches]))
    return score_rows("sentence-embedding", *outs).fidelity


@pytest.fixture(scope="module")
def all_int8_fidelity(exported, tmp_path_factory):
    _, info = _run(exported, tmp_path_factory.mktemp("lo"), _cfg(min_fidelity=0.01))
    mp = info["mixed_precision"]
    assert mp["kept_fp32"] == [] and mp["int8_layers"] == mp["layers"] == 12
    return mp["fidelity"]


@pytest.mark.parametrize("ranking", ["auto", "quantize-one", "keep-one"])
def test_search_meets_the_target_with_the_layers_the_ranking_names(
    ranking, exported, all_int8_fidelity, tmp_path
):
    target = 1 - (1 - all_int8_fidelity) * 0.3  # out of reach with every layer in int8
    dst, info = _run(exported, tmp_path, _cfg(min_fidelity=target, ranking=ranking))
    mp = info["mixed_precision"]
    k = len(mp["kept_fp32"])
    assert 0 < k < 12 and mp["fidelity"] >= target
    rows = mp["sensitivity"]
    order = {
        "quantize-one": lambda: rank_quantize_one(
            {r["layer"]: r["quantize_one_loss"] for r in rows}
        ),
        "keep-one": lambda: rank_keep_one({r["layer"]: r["keep_one_loss"] for r in rows}),
    }[mp["ranking"]]()
    assert mp["kept_fp32"] == order[:k]
    # bisection: one fewer fp32 layer was measured on the real model and fell short
    fewer = [t for t in mp["trace"] if t["ranking"] == mp["ranking"] and t["kept"] == k - 1]
    assert fewer and not fewer[0]["meets"] and fewer[0]["fidelity"] < target
    if ranking != "auto":
        assert {t["ranking"] for t in mp["trace"]} == {ranking}
    # the written model, measured again from scratch, is the one the search reported
    again = _holdout_cosine(exported, dst)
    assert again == pytest.approx(mp["fidelity"], abs=1e-9) and again >= target
    assert mp["texts"] == {"sensitivity": 24, "holdout": 24}


def test_auto_keeps_the_ranking_with_fewer_fp32_layers(exported, all_int8_fidelity, tmp_path):
    target = 1 - (1 - all_int8_fidelity) * 0.3
    _, info = _run(exported, tmp_path, _cfg(min_fidelity=target))
    mp = info["mixed_precision"]
    best = {}
    for t in mp["trace"]:
        if t["meets"]:
            best[t["ranking"]] = min(best.get(t["ranking"], 99), t["kept"])
    assert set(best) == {"quantize-one", "keep-one"}
    assert len(mp["kept_fp32"]) == min(best.values())


def test_unreachable_target_is_a_clear_error_and_writes_nothing(exported, tmp_path):
    with pytest.raises(NlpressError, match=r"min_fidelity 1.0 cannot be met: .* 11 of 12"):
        _run(exported, tmp_path, _cfg(min_fidelity=1.0))
    assert not (tmp_path / "q.onnx").exists()


def test_too_few_texts_is_an_error(exported, tmp_path):
    src, tokenize = exported
    with pytest.raises(NlpressError, match="at least 8 texts"):
        quantize_mixed(
            src, tmp_path / "q.onnx", _cfg(min_fidelity=0.9), task="sentence-embedding",
            texts=TEXTS[:5], tokenize=tokenize,
        )  # fmt: skip


def test_ignored_layers_are_not_candidates(exported):
    src, _ = exported
    cfg = _cfg(ignore=["re:.*layer\\.1/.*"])
    layers = candidate_layers(src, cfg)
    assert len(layers) == 6 and all("layer.0" in n for n in layers)
    with pytest.raises(NlpressError, match="no linear layer left"):
        candidate_layers(src, _cfg(ignore=["re:.*MatMul"]))


def test_embedding_lookups_are_candidates_of_dynamic_int8(exported, tmp_path):
    src, _ = exported
    layers = candidate_layers(src, QuantizeDynamicInt8Config())
    assert len(layers) == 12 + 3  # word, position and token-type tables, then the linears
    assert "/model/embeddings/word_embeddings/Gather" in layers
    cfg = QuantizeDynamicInt8Config(min_fidelity=0.01, sensitivity_samples=24)
    _, info = _run(exported, tmp_path, cfg.model_copy(update={"ranking": "keep-one"}))
    assert len(info["mixed_precision"]["sensitivity"]) == 15


def test_static_mixed_precision_calibrates_once_and_meets_target(exported, tmp_path, monkeypatch):
    from nlpress.quantize import static

    calls = []
    real = static._calibrate
    monkeypatch.setattr(static, "_calibrate", lambda *a: calls.append(1) or real(*a))
    src, tokenize = exported
    calib = calibration_batches(TEXTS[:16], tokenize, 8)
    cfg = QuantizeStaticInt8Config(sensitivity_samples=24, min_fidelity=0.01, ranking="keep-one")
    layers = candidate_layers(src, cfg)
    assert len(layers) == 14  # 6 linear + 2 attention MatMuls per layer, less 2 after GELU
    _, info = _run(exported, tmp_path, cfg, calib_batches=calib)
    assert len(calls) == 1 and info["mixed_precision"]["models_measured"] > 14
    f0 = info["mixed_precision"]["fidelity"]
    target = 1 - (1 - f0) * 0.3
    cfg = cfg.model_copy(update={"min_fidelity": target})
    _, info = _run(exported, tmp_path, cfg, calib_batches=calib)
    mp = info["mixed_precision"]
    assert mp["fidelity"] >= target and 0 < len(mp["kept_fp32"]) < 14
    assert set(mp["kept_fp32"]) <= set(layers) and info["format"] == "QDQ"


def test_classifier_uses_agreement_and_ranks_by_kl(tiny_classifier, tmp_path):
    lm = load_model(tiny_classifier)
    ref = torch_predictor_from_loaded(lm, "fp32", [])
    src = tmp_path / "e.onnx"
    export_onnx(lm, src, ExportOnnxConfig(), ref.tokenize(TEXTS[:4]))
    _, info = _run((src, ref.tokenize), tmp_path, _cfg(min_fidelity=0.9), "text-classification")
    mp = info["mixed_precision"]
    assert mp["metric"] == "top1_agreement" and mp["loss_metric"] == "kl_mean"
    assert mp["fidelity"] >= 0.9 and all(r["keep_one_loss"] >= 0 for r in mp["sensitivity"])


def test_min_fidelity_reaches_recipes_and_is_validated():
    rcp = with_min_fidelity(load_recipe("int8"), 0.998)
    assert rcp.steps[1].min_fidelity == 0.998
    assert with_min_fidelity(load_recipe("int8-static"), 0.99).steps[1].min_fidelity == 0.99
    via_set = load_recipe("int8", ["quantize-dynamic-int8.min_fidelity=0.995"])
    assert via_set.steps[1].min_fidelity == 0.995
    with pytest.raises(NlpressError, match="min_fidelity"):
        with_min_fidelity(load_recipe("int8"), 1.5)
    with pytest.raises(NlpressError, match="needs an int8 step on ONNX Runtime"):
        with_min_fidelity(load_recipe("bf16"), 0.99)
    with pytest.raises(NlpressError, match="min_fidelity needs backend onnxruntime"):
        load_recipe("int8-torch", ["quantize-dynamic-int8.min_fidelity=0.99"])


def test_cli_min_fidelity_writes_the_record_and_the_plot(tiny_bert, tmp_path, capsys):
    from nlpress.cli import main

    out = tmp_path / "o"
    args = ["compress", "--model", str(tiny_bert), "--min-fidelity", "0.99", "--limit", "40"]
    assert main([*args, "--out", str(out), "--rounds", "1", "--seq-len", "16", "--no-memory"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    mp = metrics["steps"][1]["info"]["mixed_precision"]
    assert mp["min_fidelity"] == 0.99 and mp["fidelity"] >= 0.99 and "kept_fp32" in mp
    assert (out / "layer_sensitivity.png").stat().st_size > 1000
    assert "layer_sensitivity.png" in (out / "report.md").read_text()


def test_cli_min_fidelity_on_the_static_recipe(tiny_classifier, sst_file, tmp_path, capsys):
    from nlpress.cli import main

    out = tmp_path / "o"
    args = ["compress", "--model", str(tiny_classifier), "--data", str(sst_file)]
    args += ["--recipe", "int8-static", "--min-fidelity", "0.75", "--out", str(out)]
    assert main([*args, "--rounds", "1", "--seq-len", "16", "--no-memory"]) == 0
    step = json.loads((out / "metrics.json").read_text())["steps"][1]
    mp = step["info"]["mixed_precision"]
    assert step["name"] == "quantize-static-int8" and mp["metric"] == "top1_agreement"
    assert mp["fidelity"] >= 0.75 and mp["texts"] == {"sensitivity": 4, "holdout": 4}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--min-fidelity", "1.5"], "less than or equal to 1"),
        (["--min-fidelity", "0.99", "--recipe", "bf16"], "needs an int8 step"),
        (["--min-fidelity", "0.99", "--limit", "5"], "at least 8 texts"),
    ],
)
def test_cli_bad_min_fidelity_is_one_error_line(extra, message, tiny_bert, tmp_path, capsys):
    from nlpress.cli import main

    out = tmp_path / "o"
    assert main(["compress", "--model", str(tiny_bert), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not out.exists()
