"""The search space: every seed and every sampled point is a valid, reproducible recipe."""

from __future__ import annotations

import pytest

from nlpress.errors import NlpressError
from nlpress.recipe import load_recipe, recipe_from_dict
from nlpress.tune.space import make_space, recipe_for, seeds, suggest


def _spaces():
    return [
        make_space("text-classification", None, 6, True, True, 5),
        make_space("sentence-embedding", None, 6, False, False),
        make_space("causal-lm", None, 2, False, False),
    ]


@pytest.mark.parametrize("space", _spaces(), ids=lambda s: s.task)
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


def test_distill_without_training_data_says_what_to_pass():
    with pytest.raises(NlpressError, match="pass --train"):
        make_space("text-classification", ("int8", "distill"), 6, False, False)
    assert "distill" not in make_space("text-classification", None, 6, False, False).families


def test_nlpress_tune_stays_callable_after_its_subpackage_is_imported():
    # importing nlpress.tune.* rebinds the attribute nlpress.tune to the package
    import importlib

    import nlpress

    importlib.import_module("nlpress.tune.api")
    assert callable(nlpress.tune)
    with pytest.raises(TypeError):
        nlpress.tune(no_such_argument=1)  # reaches nlpress.tune.api.tune itself
