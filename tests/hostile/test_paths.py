"""Class 5: an artifact reads only inside itself, and its files are the ones it was written with
(size checked on every load, sha256 on eval/bench and ``load(verify=True)``)."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest


def _set_meta(art, **kw):
    meta = json.loads((art / "nlpress.json").read_text())
    meta.update(kw)
    (art / "nlpress.json").write_text(json.dumps(meta))


def test_the_file_list_records_size_and_sha256(cls_artifact):
    meta = json.loads((cls_artifact / "nlpress.json").read_text())
    files = meta["files"]
    on_disk = sorted(
        p.relative_to(cls_artifact).as_posix()
        for p in cls_artifact.rglob("*")
        if p.is_file() and p.name != "nlpress.json"
    )
    assert sorted(files) == on_disk and "model.onnx" in files
    for name, rec in files.items():
        data = (cls_artifact / name).read_bytes()
        assert rec == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize(
    "model_file",
    ["../../../../../../../../etc/passwd", "/etc/passwd", "../art2/model.onnx", "sub/../../x.onnx"],
)
def test_model_file_outside_the_artifact_is_refused(
    model_file, art, tmp_path, cli, sst_file, user_error
):
    import nlpress
    from nlpress.errors import NlpressError

    shutil.copytree(art, tmp_path / "art2")
    if model_file.startswith("../art2"):
        model_file = str(tmp_path / "art2" / "model.onnx")  # absolute, into another artifact
    _set_meta(art, model_file=model_file)
    user_error(cli("eval", art, "--data", sst_file), "outside")
    with pytest.raises(NlpressError, match="outside"):
        nlpress.load(art)


def test_a_symlink_inside_the_artifact_that_points_outside(
    art, tmp_path, cli, sst_file, user_error
):
    shutil.copy(art / "model.onnx", tmp_path / "elsewhere.onnx")
    (art / "model.onnx").unlink()
    (art / "model.onnx").symlink_to(tmp_path / "elsewhere.onnx")
    user_error(cli("eval", art, "--data", sst_file), "outside")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", ""])
def test_a_file_list_entry_outside_the_artifact_is_refused(name, art, cli, sst_file, user_error):
    meta = json.loads((art / "nlpress.json").read_text())
    meta["files"][name] = {"size": 1, "sha256": "0" * 64}
    (art / "nlpress.json").write_text(json.dumps(meta))
    user_error(cli("eval", art, "--data", sst_file))


@pytest.mark.parametrize("name", ["model.onnx", "config.json", "tokenizer_config.json"])
def test_a_truncated_file_is_found_on_every_load(name, art, cli, sst_file, user_error):
    import nlpress
    from nlpress.errors import NlpressError

    f = art / name
    f.write_bytes(f.read_bytes()[:-1])
    user_error(cli("eval", art, "--data", sst_file), "truncated")
    with pytest.raises(NlpressError, match="truncated"):
        nlpress.load(art)  # the size check costs nothing: it is always on


def test_a_swapped_file_of_the_same_size_is_found_by_its_hash(art, cli, sst_file, fast, user_error):
    import nlpress
    from nlpress.errors import NlpressError

    f = art / "metrics.json"
    data = bytearray(f.read_bytes())
    data[10] = ord("X") if data[10] != ord("X") else ord("Y")
    f.write_bytes(bytes(data))
    user_error(cli("eval", art, "--data", sst_file), "sha256")
    user_error(cli("bench", art, *fast), "sha256")
    with pytest.raises(NlpressError, match="sha256"):
        nlpress.load(art, verify=True)
    nlpress.load(art)  # without verify only the sizes are checked: metrics.json is not read


def test_another_artifact_swapped_in_is_found(art, tmp_path, tiny_bert, cli, sst_file, user_error):
    """model.onnx replaced by another model's (a different size): a clear error, not its answers."""
    import nlpress
    from nlpress.bench.harness import BenchConfig

    other = tmp_path / "other"
    nlpress.compress(tiny_bert, "sentence-embedding", None, "onnx", other, limit=8,
                     bench=BenchConfig(rounds=1, seq_len=16, progress=False), memory=False,
                     progress=False)  # fmt: skip
    shutil.copy(other / "model.onnx", art / "model.onnx")
    user_error(cli("eval", art, "--data", sst_file))


def test_a_deleted_file_is_found(art, cli, sst_file, user_error):
    (art / "config.json").unlink()
    user_error(cli("eval", art, "--data", sst_file), "config.json")
