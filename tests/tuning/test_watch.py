"""tune's fidelity proxy taken while a trial trains: a hopeless trial stops partway through."""

from __future__ import annotations

import pytest
import torch

from nlpress.tuning import trial as T


class _Scripted:
    """Stands in for the proxy's fidelity: returns the scripted infidelity points in turn."""

    def __init__(self, points):
        self.points, self.calls = list(points), 0

    def __call__(self, ref, new, data, progress=False):
        self.calls += 1
        return {"top1_agreement": 1.0 - self.points.pop(0) / 100.0}


def _watch(monkeypatch, points, limit=8.0):
    import nlpress.evaluate.task_eval as task_eval
    import nlpress.runtime.predictor as predictor

    fid = _Scripted(points)
    monkeypatch.setattr(task_eval, "fidelity", fid)
    monkeypatch.setattr(predictor, "torch_predictor_from_loaded", lambda *a, **k: None)
    session = type("S", (), {"lm": None, "baseline": None})()
    return T.TrainingWatch(session, ["a"] * 4, limit), fid


def _train(watch, total, model):
    fn = watch(total)
    for step in range(1, total + 1):
        fn(model, step)


def test_a_trial_that_barely_improves_stops_at_a_third(monkeypatch):
    watch, fid = _watch(monkeypatch, [40.0, 38.0])
    model = torch.nn.Linear(2, 2).train()
    with pytest.raises(T.Hopeless, match="step 10 of 30"):
        _train(watch, 30, model)
    # 2 points in 9 steps, 20 steps left: 38 - 20 x 2/9 = 33.6, over the limit of 8
    assert [s for s, _ in watch.points] == [1, 10]
    assert model.training  # the proxy ran the model in eval mode, then gave it back


def test_a_trial_that_improves_fast_enough_trains_to_the_end(monkeypatch):
    # step 10: 20 - 20 x 20/9 < 8; step 20: 12 - 10 x 28/19 = -2.7 < 8. Never stopped
    watch, fid = _watch(monkeypatch, [40.0, 20.0, 12.0])
    _train(watch, 30, torch.nn.Linear(2, 2))
    assert [s for s, _ in watch.points] == [1, 10, 20] and fid.calls == 3


def test_a_trial_that_stalls_after_a_good_start_stops_at_two_thirds(monkeypatch):
    # step 10: 20 - 20 x 20/9 < 8, trains on; step 20: 19.5 - 10 x 20.5/19 = 8.7 > 8, stopped
    watch, _ = _watch(monkeypatch, [40.0, 20.0, 19.5])
    with pytest.raises(T.Hopeless, match="step 20 of 30"):
        _train(watch, 30, torch.nn.Linear(2, 2))


def test_a_curve_that_rises_mid_training_after_a_start_within_reach_trains_on(monkeypatch):
    # FFN -25% > recover on SST-2: 6.2 at step 1, 10.9 at step 100 of 300 (the learning rate's
    # peak), then 3.1 when finished: the start was within the limit, so it is not stopped
    watch, fid = _watch(monkeypatch, [6.2, 10.9, 9.0])
    _train(watch, 30, torch.nn.Linear(2, 2))
    assert fid.calls == 3
    # a start beyond the limit that then gets worse is still stopped at the first check
    watch, _ = _watch(monkeypatch, [12.0, 15.0])
    with pytest.raises(T.Hopeless, match="step 10 of 30"):
        _train(watch, 30, torch.nn.Linear(2, 2))


def test_the_watch_sees_a_real_recover_step(tiny_classifier, sst_file, tmp_path):
    """Wired through Session.build -> State.train_watch -> the training loop's callbacks."""
    from nlpress.recipe import recipe_from_dict
    from nlpress.session import Session

    s = Session(tiny_classifier, data=sst_file, progress=False, memory=False)
    rcp = recipe_from_dict(
        {
            "name": "t",
            "steps": [
                {"prune-structured": {"ffn_fraction": 0.5}},
                {"recover": {"max_steps": 6, "batch_size": 1}},
            ],
        }
    )
    (tmp_path / "m").mkdir(), (tmp_path / "n").mkdir()
    watch = T.TrainingWatch(s, s.eval_data, limit=1e9)
    s.build(s.check(rcp), tmp_path / "m", watch=watch)
    assert [step for step, _ in watch.points] == [1, 2, 4]
    assert all(0.0 <= bad <= 100.0 for _, bad in watch.points)
    watch = T.TrainingWatch(s, s.eval_data, limit=-1.0)  # nothing can meet it
    with pytest.raises(T.Hopeless, match="training step 2 of 6"):
        s.build(s.check(rcp), tmp_path / "n", watch=watch)


def test_each_training_run_is_measured_from_its_own_start(monkeypatch):
    """A student's distillation then a recovery: the second run's slope starts at its own first
    point (10), not at the student's (40), or its flat curve would look like fast progress."""
    watch, _ = _watch(monkeypatch, [40.0, 20.0, 12.0, 10.0, 9.9])
    _train(watch, 30, torch.nn.Linear(2, 2))  # the student: fast progress, trains to the end
    with pytest.raises(T.Hopeless, match="step 10 of 30"):
        _train(watch, 30, torch.nn.Linear(2, 2))  # 10 -> 9.9: projected 9.7, over 8
    assert [s for s, _ in watch.points] == [1, 10, 20, 1, 10]


def test_a_training_prefix_stopped_once_is_not_trained_again(
    tiny_classifier, sst_file, tmp_path, monkeypatch
):
    """Training is seeded, so a later trial that starts with the same training would stop at the
    same step: it is stopped at once, from the cache's record, under the same limit only."""
    from nlpress.recipe import recipe_from_dict
    from nlpress.session import Session
    from nlpress.tuning.cache import PrefixCache

    s = Session(tiny_classifier, data=sst_file, progress=False, memory=False)
    train = [
        {"prune-structured": {"ffn_fraction": 0.5}},
        {"recover": {"max_steps": 6, "batch_size": 1}},
    ]
    cache = PrefixCache(tmp_path / "cache", tiny_classifier, None)
    hopeless = T.Goal("accuracy", max_drop=-10.0, objective="size", rounds=1)  # limit -25
    (tmp_path / "t1").mkdir(), (tmp_path / "t2").mkdir()
    first = s.check(recipe_from_dict({"name": "a", "steps": train}))
    with pytest.raises(T.Hopeless, match="training step 2 of 6"):
        T.run_trial(s, first, tmp_path / "t1", hopeless, s.eval_data, cache)
    longer = s.check(recipe_from_dict({"name": "b", "steps": [*train, {"export-onnx": {}}]}))
    built = []
    s.build = lambda *a, **k: built.append(1)  # noqa: ARG005 (must not be reached)
    with pytest.raises(T.Hopeless, match="not run again"):
        T.run_trial(s, longer, tmp_path / "t2", hopeless, s.eval_data, cache)
    assert not built
    limit = T.hopeless_limit(hopeless)
    assert cache.stopped(list(longer.recipe.steps), limit + 1) is None
    # a mark that another proxy measure left (an older nlpress) does not apply either
    assert cache.stopped(list(longer.recipe.steps), limit) is not None
    monkeypatch.setattr(T, "PROXY_VERSION", T.PROXY_VERSION + 1)
    assert cache.stopped(list(longer.recipe.steps), limit) is None


def test_the_proxy_of_sts_embeddings_is_the_pairs_similarity_ranking():
    # STS pairs: a rotated student's mean cosine says nothing; the ranking of its pairs does
    from nlpress.tuning.trial import infidelity_points

    fid = {"cosine_mean": 0.71, "similarity_spearman": 0.94}
    assert infidelity_points(fid) == pytest.approx(6.0)
    assert infidelity_points({"cosine_mean": 0.99}) == pytest.approx(1.0)
    assert infidelity_points({"top1_agreement": 0.9, "kl": 0.1}) == pytest.approx(10.0)
    # the report's fidelity column shows the same measure, named
    from nlpress.tuning.search import _fid

    assert _fid(fid) == {"fidelity": 0.94, "fidelity_kind": "similarity_spearman"}
    assert _fid({}) == {"fidelity": None, "fidelity_kind": None}
