"""``nlpress.tune`` end to end on the tiny classifier: trials, best artifact, front, report."""

from __future__ import annotations

import json

import nlpress


def test_tune_end_to_end(tiny_classifier, dev_file, train_file, tmp_path):
    out = tmp_path / "tuned"
    res = nlpress.tune(
        tiny_classifier,
        dev_file,
        train=train_file,
        out=out,
        max_drop=5.0,
        objective="size",
        trials=5,
        space=["int8", "static", "prune", "distill"],
        train_steps=2,
        rounds=1,
        progress=False,
    )
    # the best is a complete artifact that loads and predicts
    for name in ("model.onnx", "nlpress.json", "recipe.yaml", "metrics.json", "report.html"):
        assert (out / "best" / name).is_file(), name
    assert res.best is not None and res.best.load().run(["a good movie"]).shape == (1, 2)
    m = json.loads((out / "best" / "metrics.json").read_text())
    assert m["tune"]["trial"] == res.summary["chosen"]["number"]
    assert m["tune"]["heldout"]["drop"] <= 5.0  # re-measured on the held-out split
    # every trial left its recipe; the front is non-empty and feasible; the report shows both
    rows = [r for r in res.trials if r["duplicate_of"] is None]
    assert len(rows) >= 5
    for r in rows:
        assert (out / "trials" / f"{r['number']:04d}" / "recipe.yaml").is_file()
    assert res.front and all(r["drop"] <= 5.0 for r in res.front)
    for name in ("report.md", "report.html", "front.png", "summary.json"):
        assert (out / name).is_file(), name
    md = (out / "report.md").read_text()
    assert "## Every trial" in md and "held-out" in md and "Why:" in md
    # the fidelity column is the proxy's measure, and the report says which it is
    assert {r["fidelity_kind"] for r in rows} == {"top1_agreement"}
    assert "fidelity: top-1 agreement with the fp32 model." in md
    # the seeds include a distilled student: its trained prefix is cached for reuse
    assert list((out / "cache").glob("*/state.json"))


def test_trial_recipe_reproduces_with_compress(tiny_classifier, dev_file, train_file, tmp_path):
    """A trial's recipe.yaml is an ordinary recipe: compress builds the same model from it."""
    from nlpress.bench.harness import BenchConfig
    from nlpress.tuning.space import make_space, recipe_for

    space = make_space("text-classification", ("prune", "int8"), 2, True, False, 2, str(train_file))
    p = {"prune": "ffn-25", "recover": True, "quant": "int8"}
    p |= {"per_channel": False, "quantize_embeddings": True}
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe_for(p, space, "trial-0007").to_yaml())
    art = nlpress.compress(
        tiny_classifier,
        data=dev_file,
        recipe=path,
        out=tmp_path / "again",
        bench=BenchConfig(rounds=1, seq_len=16, progress=False),
        memory=False,
        progress=False,
    )
    names = [s["name"] for s in art.metrics["steps"]]
    assert names == [
        "prune-structured",
        "recover",
        "export-onnx",
        "quantize-dynamic-int8",
        "ort-optimize",
    ]
