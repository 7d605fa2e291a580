"""The search space: every seed and every sampled point is a valid, reproducible recipe."""

from __future__ import annotations

import pytest

from nlpress.errors import NlpressError
from nlpress.recipe import load_recipe, recipe_from_dict
from nlpress.tuning.space import PRUNE_KINDS, make_space, recipe_for, seeds, suggest


def _spaces():
    return [
        make_space("text-classification", None, 6, True, True, 5),
        make_space("text-classification", None, 6, True, False, 5, openvino=True),
        make_space("sentence-embedding", None, 6, False, False),
        make_space("causal-lm", None, 2, False, False),
    ]


@pytest.mark.parametrize(
    "space", _spaces(), ids=lambda s: s.task + ("-openvino" if "openvino" in s.families else "")
)
def test_seeds_and_samples_are_valid_recipes(space, tmp_path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for p in seeds(space):
        rcp = recipe_for(p, space, "seed")
        (tmp_path / "r.yaml").write_text(rcp.to_yaml())
        assert load_recipe(tmp_path / "r.yaml").steps == rcp.steps  # a file compress can read
    for _ in range(40):
        t = study.ask()
        rcp = recipe_for(suggest(t, space), space, "sampled")
        assert recipe_from_dict(rcp.to_dict()).steps == rcp.steps
        study.tell(t, 0.0)


@pytest.mark.parametrize("kind", sorted(PRUNE_KINDS))
def test_every_prune_kind_passes_the_steps_own_checks(kind, tiny_classifier, sst_file):
    # a kind the steps refuse would be "infeasible" in every trial that draws it (layers-25 was,
    # 59 times in one SST-2 search, before it asked for activation scores)
    from nlpress.session import Session

    space = make_space("text-classification", None, 6, True, False, 5, str(sst_file))
    for recover in (False, True):
        p = {"student": 0, "prune": kind, "recover": recover, "quant": "int8"}
        p |= {"per_channel": True, "quantize_embeddings": True}
        Session(tiny_classifier, data=sst_file, progress=False).check(recipe_for(p, space, "k"))


def test_compound_student_prune_recover_int8():
    space = make_space("text-classification", None, 6, True, False, 5)
    p = {"student": 3, "prune": "ffn-50", "recover": True, "quant": "int8"}
    p |= {"per_channel": True, "quantize_embeddings": True}
    names = [next(iter(s)) for s in recipe_for(p, space, "c").to_dict()["steps"]]
    assert names == [
        "distill-student",
        "prune-structured",
        "recover",
        "export-onnx",
        "quantize-dynamic-int8",
        "ort-optimize",
    ]


def test_a_student_gets_its_own_training_budget():
    # a student learns the whole task, recovery only mends a pruned model: their budgets differ
    space = make_space("text-classification", None, 6, True, False, 300, student_steps=1200)
    p = {"student": 3, "prune": "ffn-25", "recover": True, "quant": "onnx"}
    steps = {
        next(iter(s)): next(iter(s.values())) for s in recipe_for(p, space, "c").to_dict()["steps"]
    }
    assert steps["distill-student"]["max_steps"] == 1200
    assert steps["recover"]["max_steps"] == 300
    plain = make_space("text-classification", None, 6, True, False, 300)
    steps = {
        next(iter(s)): next(iter(s.values())) for s in recipe_for(p, plain, "c").to_dict()["steps"]
    }
    assert steps["distill-student"]["max_steps"] == steps["recover"]["max_steps"] == 300


def test_distill_without_training_data_says_what_to_pass():
    with pytest.raises(NlpressError, match="pass --train"):
        make_space("text-classification", ("int8", "distill"), 6, False, False)
    assert "distill" not in make_space("text-classification", None, 6, False, False).families


def test_nlpress_tune_stays_a_function_after_its_modules_load():
    import nlpress
    import nlpress.tuning.api  # noqa: F401

    assert callable(nlpress.tune)


def test_prefix_cache_round_trips_a_pruned_model_without_pickle(tiny_classifier, tmp_path):
    import torch

    from nlpress.models.loader import load_model
    from nlpress.prune.structured import prune_structured
    from nlpress.state import State
    from nlpress.tuning.cache import PrefixCache

    lm = load_model(tiny_classifier)
    steps = list(
        recipe_from_dict(
            {
                "name": "t",
                "steps": [
                    {"prune-structured": {"head_fraction": 0.5, "ffn_fraction": 0.5}},
                    {"recover": {}},
                ],
            }
        ).steps
    )
    st = State(lm, tmp_path, {})
    st.torch_model, _ = prune_structured(lm.model, steps[0])
    st.masks = {"w": torch.ones(3, 4, dtype=torch.bool)}
    st.pruning, st.steps = {"kind": "structured"}, [{"name": "recover", "info": {"loss": 0.5}}]
    cache = PrefixCache(tmp_path / "cache", tiny_classifier, None)
    cache.store(st, steps)
    assert not list((tmp_path / "cache").rglob("*.pt"))
    again = State(lm, tmp_path, {})
    assert cache.restore(again, steps + [steps[-1]]) == 2
    a, b = st.torch_model.state_dict(), again.torch_model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(again.masks["w"], st.masks["w"])
    assert again.steps[0]["info"]["cached"] is True


def test_a_repeated_proposal_is_followed_by_a_random_one():
    """TPE re-proposes measured recipes; after one, the next point is drawn at random, seeded by
    the finished trials alone (so a resumed run draws the same)."""
    import optuna

    from nlpress.tuning.study import make_sampler

    assert isinstance(make_sampler(3, 10), optuna.samplers.TPESampler)
    rnd = make_sampler(3, 10, repeated=True)
    assert isinstance(rnd, optuna.samplers.RandomSampler)

    def draw(sampler):
        study = optuna.create_study(sampler=sampler)
        return [study.ask().suggest_float("x", 0, 1) for _ in range(3)]

    assert draw(make_sampler(3, 10, True)) == draw(make_sampler(3, 10, True))
    assert draw(make_sampler(3, 10, True)) != draw(make_sampler(3, 11, True))


@pytest.mark.parametrize("precision", ["f32", "int8", "int8-weights"])
def test_openvino_backend_after_a_student_passes_the_steps_own_checks(
    precision, tiny_classifier, sst_file
):
    # the backend is one more dimension: whatever precedes it, the OpenVINO steps must accept it
    from nlpress.session import Session

    space = make_space("text-classification", None, 2, True, False, 5, str(sst_file), True)
    assert "openvino" in space.families
    p = {"student": 1, "prune": "ffn-25", "recover": True}
    p |= {"backend": "openvino", "ov_precision": precision}
    rcp = recipe_for(p, space, "ov")
    names = [next(iter(s)) for s in rcp.to_dict()["steps"]]
    tail = ["quantize-openvino-int8"] if precision != "f32" else []
    assert names == ["distill-student", "prune-structured", "recover", "export-openvino", *tail]
    Session(tiny_classifier, data=sst_file, progress=False).check(rcp)


def test_openvino_is_searched_only_where_installed():
    assert "openvino" not in make_space("sentence-embedding", None, 6, False, False).families
    assert (
        "openvino"
        in make_space("sentence-embedding", None, 6, False, False, openvino=True).families
    )
    with pytest.raises(NlpressError, match="OpenVINO is not installed"):
        make_space("sentence-embedding", ("int8", "openvino"), 6, False, False)
    sp = make_space("sentence-embedding", None, 6, False, False, openvino=True)
    ov = [p for p in seeds(sp) if p.get("backend") == "openvino"]
    assert ov == [{"backend": "openvino", "ov_precision": "int8", "prune": "none"}]
    assert all(p["backend"] == "onnxruntime" for p in seeds(sp) if p not in ov)
