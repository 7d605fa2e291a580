import pytest

from nlpress.errors import NlpressError
from nlpress.recipe import (
    BUILTIN,
    ExportOnnxConfig,
    QuantizeDynamicInt8Config,
    load_recipe,
    recipe_from_dict,
)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_recipes_validate_and_round_trip(name, tmp_path):
    r = load_recipe(name)
    p = tmp_path / "r.yaml"
    p.write_text(r.to_yaml())
    again = load_recipe(p)
    assert again.steps == r.steps


def test_defaults_are_per_channel_int8():
    q = load_recipe("int8").steps[1]
    assert isinstance(q, QuantizeDynamicInt8Config)
    assert q.per_channel and q.weight_type == "int8" and q.backend == "onnxruntime"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"steps": [{"prune-everything": {}}]}, "unknown step 'prune-everything'"),
        ({"steps": [{"export-onnx": {"opsett": 17}}]}, "unknown key 'opsett'"),
        ({"steps": [{"export-onnx": {"opset": 3}}]}, "bad value 3 for 'opset'"),
        ({"steps": [{"export-onnx": {"atol": -1}}]}, "'atol'"),
        (
            {"steps": [{"export-onnx": {}}, {"quantize-dynamic-int8": {"weight_type": "int3"}}]},
            "'weight_type'",
        ),
        ({"steps": []}, "non-empty list"),
        ({"steps": [{"export-onnx": {}}], "colour": "red"}, "unknown key 'colour'"),
        ({"version": 9, "steps": [{"export-onnx": {}}]}, "version 9"),
        ({"steps": [{"ort-optimize": {}}]}, "needs an export-onnx"),
        ({"steps": [{"quantize-dynamic-int8": {}}]}, "needs export-onnx"),
        (
            {
                "steps": [
                    "export-onnx",
                    "quantize-dynamic-int8",
                    {"ort-optimize": {"mode": "transformers"}},
                ]
            },
            "must come before quantization",
        ),
        (
            {"steps": [{"export-onnx": {}}, {"quantize-dynamic-int8": {"backend": "torch"}}]},
            "must come before",
        ),
    ],
)
def test_bad_recipes_name_the_problem(data, needle):
    with pytest.raises(NlpressError, match=None) as e:
        recipe_from_dict(data)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_and_invalid_yaml_files(tmp_path):
    with pytest.raises(NlpressError, match="neither a built-in"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [export-onnx: {opset: 17\n")
    with pytest.raises(NlpressError, match="not valid YAML"):
        load_recipe(bad)


def test_bare_step_names_are_accepted():
    r = recipe_from_dict({"steps": ["export-onnx", "ort-optimize"]})
    assert r.steps[0] == ExportOnnxConfig()


def test_set_overrides_change_a_builtin_recipe():
    from nlpress.recipe import load_recipe

    r = load_recipe("int8", ["quantize-dynamic-int8.per_channel=false", "1.opset=18"])
    assert r.steps[1].per_channel is False and r.steps[0].opset == 18
    assert load_recipe("int8").steps[1].per_channel is True  # the built-in is not mutated


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("nonsense", "step.key=value"),
        ("prune.sparsity=0.5", "has no step 'prune'"),
        ("export-onnx.opsett=17", "unknown key 'opsett'"),
        ("export-onnx.opset=99", "bad value 99"),
    ],
)
def test_bad_set_overrides(override, needle):
    from nlpress.recipe import load_recipe

    with pytest.raises(NlpressError) as e:
        load_recipe("int8", [override])
    assert needle in str(e.value)


def test_cast_must_stand_alone():
    with pytest.raises(NlpressError, match="cannot be combined"):
        recipe_from_dict({"steps": ["export-onnx", {"cast": {"dtype": "bf16"}}]})


def test_cli_help_names_every_builtin_recipe():
    """The --recipe help is written out (so `nlpress --help` imports nothing heavy): keep it whole."""
    from nlpress.cli import build_parser
    from nlpress.recipe import BUILTIN

    compress = build_parser()._subparsers._group_actions[0].choices["compress"]
    text = next(a.help for a in compress._actions if "--recipe" in a.option_strings)
    listed = text.split("(", 1)[1].split(")", 1)[0].split(", ")
    assert sorted(listed) == sorted(BUILTIN), (sorted(listed), sorted(BUILTIN))
