"""Pruning recipe steps: built-ins, strict values, YAML round trip, order with other steps."""

from __future__ import annotations

import pytest

from nlpress.errors import NlpressError
from nlpress.recipe import (
    PruneMagnitudeConfig,
    PruneNMConfig,
    PruneStructuredConfig,
    load_recipe,
    recipe_from_dict,
)


def test_builtins_and_their_defaults():
    s = load_recipe("prune-structured").steps[0]
    assert isinstance(s, PruneStructuredConfig)
    assert s.head_fraction == pytest.approx(1 / 3) and s.ffn_fraction == 0.5
    m = load_recipe("magnitude-50").steps[0]
    assert isinstance(m, PruneMagnitudeConfig) and m.sparsity == 0.5 and m.storage == "sparse"
    nm = load_recipe("magnitude-2:4").steps[0]
    assert isinstance(nm, PruneNMConfig) and (nm.n, nm.m) == (2, 4)


def test_yaml_round_trip_with_overrides():
    r = load_recipe("magnitude-50", ["prune-magnitude.scope=global", "1.norm=l2"])
    back = recipe_from_dict(__import__("yaml").safe_load(r.to_yaml()))
    assert back.steps == r.steps and back.steps[0].scope == "global"


@pytest.mark.parametrize(
    "step,params,match",
    [
        ("prune-magnitude", {"sparsity": 1.0}, "sparsity"),
        ("prune-magnitude", {"sparsity": -0.1}, "sparsity"),
        ("prune-magnitude", {"norm": "l3"}, "norm"),
        ("prune-magnitude", {"sparsty": 0.5}, "unknown key 'sparsty'"),
        ("prune-nm", {"n": 4, "m": 4}, "n < m"),
        ("prune-nm", {"n": 5}, "n < m"),
        ("prune-structured", {"ffn_fraction": 1.0}, "ffn_fraction"),
        ("prune-structured", {"score": "gradient"}, "score"),
    ],
)
def test_bad_values_name_the_key(step, params, match):
    with pytest.raises(NlpressError, match=match):
        recipe_from_dict({"steps": [{step: params}]})


def test_chain_order():
    ok = recipe_from_dict(
        {
            "steps": [
                {"prune-structured": {}},
                {"prune-magnitude": {}},
                {"export-onnx": {}},
                {"quantize-dynamic-int8": {}},
            ]
        }
    )
    assert len(ok.steps) == 4
    with pytest.raises(NlpressError, match="must come before quantize-dynamic-int8"):
        recipe_from_dict(
            {"steps": [{"quantize-dynamic-int8": {"backend": "torch"}}, {"prune-nm": {}}]}
        )


def test_row_scope_prunes_each_output_neuron_exactly():
    import torch

    from nlpress.prune.unstructured import prune_unstructured

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    cfg = PruneMagnitudeConfig(sparsity=0.5, scope="row", targets=["0", "2"])
    masks, summary = prune_unstructured(model, cfg)
    assert ((model[0].weight == 0).sum(1) == 5).all() and ((model[2].weight == 0).sum(1) == 3).all()
    assert summary["info"]["sparsity"] == 0.5 and set(summary["per_layer"]) == {"0", "2"}
