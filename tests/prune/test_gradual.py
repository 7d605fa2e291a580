"""Gradual magnitude pruning: the cubic schedule against Zhu & Gupta's formula, the pruner
callback in the real training loop (pruned weights stay zero, exact final sparsity), and the
prune-gradual / recover recipe steps end to end on a tiny classifier."""

from __future__ import annotations

import json

import pytest
import torch

import nlpress
from nlpress.bench.harness import BenchConfig
from nlpress.errors import NlpressError
from nlpress.prune.gradual import GradualPruner, Schedule, cubic_sparsity, make_schedule
from nlpress.recipe import PruneGradualConfig, load_recipe

BENCH = BenchConfig(rounds=1, seq_len=16, progress=False, latency_samples=2, throughput_batches=1)


def _compress(model, data, recipe, out, **kw):
    return nlpress.compress(
        model, None, data, recipe, out, limit=8, bench=BENCH, memory=False, progress=False, **kw
    )


def test_cubic_schedule_matches_formula():
    s_i, s_f, t0, n, dt = 0.1, 0.9, 5, 4, 10
    for t in range(0, 70):
        if t < t0:
            want = s_i
        elif t >= t0 + n * dt:
            want = s_f
        else:
            want = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3
        assert cubic_sparsity(t, s_i, s_f, t0, n, dt) == pytest.approx(want, abs=1e-12)
    # monotone, starts at s_i and ends at s_f; the steepest rise comes first
    vals = [cubic_sparsity(t0 + k * dt, s_i, s_f, t0, n, dt) for k in range(n + 1)]
    assert vals[0] == pytest.approx(s_i) and vals[-1] == pytest.approx(s_f)
    jumps = [b - a for a, b in zip(vals, vals[1:], strict=False)]
    assert all(j > 0 for j in jumps) and jumps == sorted(jumps, reverse=True)


def test_make_schedule_spans_start_to_end():
    cfg = PruneGradualConfig(sparsity=0.8, start=0.1, end=0.7, frequency=5)
    sch = make_schedule(cfg, 100)
    assert (sch.t0, sch.dt, sch.n) == (10, 5, 12)  # updates at 10, 15, ..., 70
    assert [t for t in range(101) if sch.is_update(t)] == list(range(10, 71, 5))
    assert sch.at(70) == pytest.approx(0.8) and sch.at(10) == pytest.approx(0.0)
    short = make_schedule(PruneGradualConfig(frequency=50), 8)  # span 6 < frequency: dt shrinks
    assert short.dt == 6 and short.at(6) == pytest.approx(0.9)


def test_end_must_follow_start():
    with pytest.raises(NlpressError, match="end"):
        load_recipe("magnitude-90-gradual", ["prune-gradual.start=0.8", "prune-gradual.end=0.5"])


def _fake_step(model):
    """What an optimizer step does to pruned weights: moves every entry away from zero."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)


def test_pruner_keeps_pruned_weights_zero_and_reaches_exact_sparsity():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 10), torch.nn.ReLU(), torch.nn.Linear(10, 6))
    cfg = PruneGradualConfig(sparsity=0.75, end=1.0, frequency=2, targets=["0", "2"])
    sch = Schedule(0.0, 0.75, 0, 4, 2)
    pruner = GradualPruner(cfg, sch)
    pruner.start(model)
    zeros_before: dict = {}
    for step in range(1, 9):
        _fake_step(model)
        pruner(model, step)
        want = sch.at(step - step % 2)  # the target of the last update
        for name in ("0.weight", "2.weight"):
            w = dict(model.named_parameters())[name]
            assert int((w == 0).sum()) == round(want * w.numel()), (step, name)
            zeros = w == 0
            if name in zeros_before:  # masks only grow: a pruned weight never comes back
                assert bool((zeros | ~zeros_before[name]).all())
            zeros_before[name] = zeros
    masks = pruner.finish(model)
    assert int((~masks["0.weight"]).sum()) == 120 and int((~masks["2.weight"]).sum()) == 45


def test_gradual_recipe_trains_with_the_loop_exact_sparsity(tiny_classifier, sst_file, tmp_path):
    out = tmp_path / "g"
    sets = ["prune-gradual.batch_size=4", "prune-gradual.epochs=3", "prune-gradual.frequency=1"]
    art = _compress(tiny_classifier, sst_file, "magnitude-90-gradual", out, overrides=sets)
    info = art.metrics["steps"][0]["info"]
    assert info["train_steps"] == 6 and info["sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert info["mask_updates"] >= 4  # s_i at step 0, then updates up to 75% of training
    assert json.loads((out / "nlpress.json").read_text())["weights_format"] == "bitmask"
    model = nlpress.load(out).module.model
    src = nlpress.load(tiny_classifier).module.model
    emb = model.bert.embeddings.word_embeddings.weight
    assert int((emb == 0).sum()) == round(0.9 * emb.numel())  # the embedding table too
    q = model.bert.encoder.layer[1].attention.self.query.weight
    assert int((q == 0).sum()) == round(0.9 * q.numel())
    # it trained: kept weights moved away from the original
    q0 = src.bert.encoder.layer[1].attention.self.query.weight
    assert not torch.allclose(q[q != 0], q0[q != 0])
    dense = sum(f.stat().st_size for f in tiny_classifier.glob("*.safetensors"))
    assert (out / "model.safetensors").stat().st_size < 0.5 * dense
    assert "## Sparsity per layer" in (out / "report.md").read_text()


def test_gradual_needs_data(tiny_classifier, tmp_path):
    with pytest.raises(NlpressError, match="needs training data: pass --data"):
        _compress(tiny_classifier, None, "magnitude-90-gradual", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_gradual_distill_on_an_embedding_model(tiny_bert, sts_file, tmp_path):
    """No labels: method distill learns the unpruned encoder's pooled embeddings."""
    sets = [
        "prune-gradual.method=distill",
        "prune-gradual.sparsity=0.5",
        "prune-gradual.batch_size=4",
        "prune-gradual.epochs=2",
        "prune-gradual.frequency=1",
        "prune-gradual.targets=['re:.*layer\\.\\d+\\..*']",
    ]
    art = _compress(tiny_bert, sts_file, "magnitude-90-gradual", tmp_path / "e", overrides=sets)
    info = art.metrics["steps"][0]["info"]
    assert info["method"] == "distill" and info["train_steps"] == 6  # 12 sentences / 4 x 2
    assert info["sparsity"] == pytest.approx(0.5, abs=1e-3) and info["final_loss"] > 0
    layer = nlpress.load(tmp_path / "e").module.model.encoder.layer[0].output.dense.weight
    assert int((layer == 0).sum()) == round(0.5 * layer.numel())
