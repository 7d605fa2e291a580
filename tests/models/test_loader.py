import shutil

import pytest

from nlpress.errors import NlpressError
from nlpress.models.loader import load_model, resolve_model_path


def test_tasks_are_detected(tiny_bert, tiny_classifier, tiny_llama):
    assert load_model(tiny_bert).task == "sentence-embedding"
    lm = load_model(tiny_classifier)
    assert lm.task == "text-classification" and lm.id2label == {0: "negative", 1: "positive"}
    assert load_model(tiny_llama).task == "causal-lm"


def test_missing_path_is_not_a_hub_lookup(tmp_path):
    with pytest.raises(NlpressError, match="does not exist"):
        resolve_model_path(str(tmp_path / "no-such-model"))
    with pytest.raises(NlpressError, match="does not exist"):
        resolve_model_path("./my-bert")


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NlpressError, match="not a model folder"):
        load_model(tmp_path)


def test_config_without_weights(tiny_bert, tmp_path):
    shutil.copy(tiny_bert / "config.json", tmp_path / "config.json")
    with pytest.raises(NlpressError, match="no weights"):
        load_model(tmp_path)


def test_corrupt_weights(tiny_bert, tmp_path):
    dst = tmp_path / "m"
    shutil.copytree(tiny_bert, dst)
    w = dst / "model.safetensors"
    w.write_bytes(w.read_bytes()[:200])
    with pytest.raises(NlpressError, match="corrupt"):
        load_model(dst)


def test_hub_id_offline_says_to_pass_a_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NlpressError, match="pass a local model folder"):
        resolve_model_path("some-org/some-model-that-is-not-cached")


def test_unknown_task(tiny_bert):
    with pytest.raises(NlpressError, match="unknown task"):
        load_model(tiny_bert, "translation")


def test_sentence_transformers_pooling_is_read(tiny_bert, tmp_path):
    import json

    dst = tmp_path / "st"
    shutil.copytree(tiny_bert, dst)
    (dst / "1_Pooling").mkdir()
    (dst / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    (dst / "modules.json").write_text(
        json.dumps(
            [
                {"type": "sentence_transformers.models.Transformer", "path": ""},
                {"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"},
                {"type": "sentence_transformers.models.Normalize", "path": "2_Normalize"},
            ]
        )
    )
    lm = load_model(dst)
    assert (lm.pooling, lm.normalize) == ("cls", True)


def test_weights_missing_tensors_is_an_error_not_random_layers(tiny_classifier, tmp_path):
    """A folder whose weights lack some tensors (e.g. a weight-only artifact without its
    nlpress.json) must not load with transformers' random initialisation."""
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "partial"
    shutil.copytree(tiny_classifier, folder)
    weights = load_file(folder / "model.safetensors")
    dropped = next(k for k in weights if "encoder.layer.0.attention.self.query.weight" in k)
    del weights[dropped]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(NlpressError, match=r"lack 1 of the model's tensors.*random"):
        load_model(folder, "text-classification")


def test_a_missing_task_head_only_warns(tiny_bert, monkeypatch):
    """An encoder loaded for text-classification lacks only its head: benchmarkable, with a
    warning that its predictions are random."""
    import nlpress.models.loader as loader

    seen: list[str] = []  # not caplog: other tests reconfigure logging in the same process
    monkeypatch.setattr(loader.log, "warning", lambda msg, *args: seen.append(msg % args))
    lm = load_model(tiny_bert, "text-classification")
    assert lm.task == "text-classification"
    assert any("predictions are random" in m for m in seen), seen
