"""Bad inputs of the OpenVINO and GPU paths: one ``error:`` line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil
import sys

import pytest


def assert_user_error(r, word: str) -> None:
    assert r.rc == 2, (r.rc, r.err)
    assert r.out == ""
    assert len(r.err_lines) == 1, r.err
    assert r.err_lines[0].startswith("error: ") and word in r.err_lines[0], r.err


@pytest.fixture()
def no_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("recipe", ["int8", "bf16"])
def test_compress_device_cuda_without_a_gpu(recipe, tiny_bert, tmp_path, cli, fast, no_gpu):
    out = tmp_path / "out"
    r = cli(
        "compress",
        "--model",
        tiny_bert,
        "--recipe",
        recipe,
        "--device",
        "cuda",
        "--out",
        out,
        *fast,
    )
    assert_user_error(r, "--device cuda")
    assert not out.exists()


def test_bench_and_eval_device_cuda_without_a_gpu(earlier, sts_file, cli, no_gpu):
    assert_user_error(cli("bench", earlier, "--device", "cuda", "--no-memory"), "no CUDA GPU")
    r = cli("eval", earlier, "--data", sts_file, "--device", "cuda")
    assert_user_error(r, "no CUDA GPU")


def test_unknown_device_is_a_usage_error(tiny_bert, cli):
    assert_user_error(cli("compress", "--model", tiny_bert, "--device", "tpu"), "tpu")


@pytest.mark.parametrize("recipe", ["openvino", "int8-openvino", "int8-auto"])
def test_compress_openvino_missing(recipe, tiny_bert, tmp_path, cli, fast, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    out = tmp_path / "out"
    r = cli("compress", "--model", tiny_bert, "--recipe", recipe, "--out", out, *fast)
    assert_user_error(r, "pip install 'nlpress[openvino]'")
    assert not out.exists()


def test_compress_nncf_missing(tiny_bert, tmp_path, cli, fast, monkeypatch):
    monkeypatch.setitem(sys.modules, "nncf", None)
    r = cli(
        "compress",
        "--model",
        tiny_bert,
        "--recipe",
        "int8-openvino",
        "--out",
        tmp_path / "o",
        *fast,
    )
    assert_user_error(r, "NNCF")
    assert "pip install 'nlpress[openvino]'" in r.err


def test_openvino_artifact_loaded_where_openvino_is_absent(earlier, tmp_path, cli, monkeypatch):
    """An OpenVINO artifact (its nlpress.json says so) on a machine without OpenVINO."""
    art = tmp_path / "ov-art"
    shutil.copytree(earlier, art)
    meta = json.loads((art / "nlpress.json").read_text())
    meta.update(backend="openvino", model_file="model.xml")
    (art / "nlpress.json").write_text(json.dumps(meta))
    monkeypatch.setitem(sys.modules, "openvino", None)
    for args in (("bench", art, "--no-memory"), ("eval", art)):
        assert_user_error(cli(*args), "pip install 'nlpress[openvino]'")


def test_int8_openvino_json_keeps_stdout_to_one_object(tiny_bert, tmp_path, cli, fast):
    """NNCF prints progress bars and tables to stdout; --json must still print one object."""
    pytest.importorskip("nncf")
    out = tmp_path / "ov"
    r = cli(
        "compress",
        "--model",
        tiny_bert,
        "--recipe",
        "int8-openvino",
        "--out",
        out,
        "--json",
        "--limit",
        "16",
        *fast,
    )
    assert r.rc == 0, r.err
    data = r.json()
    assert data["result"]["backend"] == "openvino"
    assert [s["name"] for s in data["steps"]] == ["export-openvino", "quantize-openvino-int8"]
