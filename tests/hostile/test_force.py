"""Class 1: ``--force`` replaces only what nlpress wrote; checkpoint folders nlpress did not make
are never removed. Every refusal: exit 2, one line, and the folder byte-identical."""

from __future__ import annotations

import json
import os

import pytest

from nlpress import artifact
from nlpress.artifact import META, atomic_artifact
from nlpress.errors import NlpressError


def _compress(cli, tiny_classifier, sst_file, out, fast, *extra):
    return cli("compress", "--model", tiny_classifier, "--data", sst_file, "--out", out,
               "--force", "--limit", "8", *fast, *extra)  # fmt: skip


def _user_folder(tmp_path, meta_text: str | None):
    u = tmp_path / "u"
    u.mkdir()
    (u / "thesis.txt").write_text("precious")
    if meta_text is not None:
        (u / META).write_text(meta_text)
    return u


@pytest.mark.parametrize(
    "meta_text",
    [
        '{"my": "cfg"}',  # the case: any nlpress.json at all used to count
        '{"format_version": 1, "task": "text-classification"}',  # no file list
        '{"format_version": 1, "files": {"thesis.txt": {"size": 8}}, "x": 1}',  # wrong: see below
        "[1, 2]",
        "{broken",
        "",
    ],
)
def test_force_never_replaces_a_folder_nlpress_did_not_write(
    meta_text, tmp_path, cli, tiny_classifier, sst_file, fast, tree, user_error
):
    u = _user_folder(tmp_path, meta_text)
    if "files" in meta_text:  # a forged list that names the user's file: still only that file
        (u / "notes.md").write_text("mine too")
    before = tree(u)
    r = _compress(cli, tiny_classifier, sst_file, u, fast)
    user_error(r)
    assert tree(u) == before
    assert not list(tmp_path.glob(".u.nlpress-*"))


@pytest.mark.parametrize(
    "extra",
    [
        {"NOTES.txt": "my notes"},
        {"exp/run1.log": "loss 0.1"},
        {"exp/": None},  # an empty folder of the user's
        {"report.md.bak": "x", "a/b/c.txt": "deep"},
    ],
)
def test_force_refuses_an_artifact_with_files_the_user_added(
    extra, art, cli, tiny_classifier, sst_file, fast, tree, user_error
):
    for name, text in extra.items():
        p = art / name
        if text is None:
            p.mkdir(parents=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
    before = tree(art)
    line = user_error(_compress(cli, tiny_classifier, sst_file, art, fast), "nlpress did not write")
    assert sorted(extra)[0].rstrip("/") in line
    assert tree(art) == before


def test_force_replaces_a_sealed_artifact_and_only_that(tmp_path):
    out = tmp_path / "out"
    with atomic_artifact(out, force=False) as tmp:
        (tmp / META).write_text(json.dumps({"format_version": artifact.FORMAT_VERSION}))
        (tmp / "sub").mkdir()
        (tmp / "sub" / "a.txt").write_text("a")
    meta = json.loads((out / META).read_text())
    assert (
        meta["files"]["sub/a.txt"]["size"] == 1 and len(meta["files"]["sub/a.txt"]["sha256"]) == 64
    )
    with atomic_artifact(out, force=True) as tmp:
        (tmp / META).write_text(json.dumps({"format_version": artifact.FORMAT_VERSION}))
        (tmp / "b.txt").write_text("b")
    assert sorted(os.listdir(out)) == ["b.txt", META]
    (out / "mine.txt").write_text("user")
    with pytest.raises(NlpressError, match="mine.txt"):
        with atomic_artifact(out, force=True):
            pass
    assert (out / "mine.txt").read_text() == "user"


@pytest.mark.parametrize("content", [{"README.txt": "x"}, {"last/trainer.json": "{}"}, {}])
def test_finetune_keeps_a_checkpoint_folder_it_did_not_make(
    content, tmp_path, cli, tiny_bert, train_tsv, tree, user_error
):
    ck = tmp_path / "m.checkpoints"
    ck.mkdir()
    for name, text in content.items():
        (ck / name).parent.mkdir(parents=True, exist_ok=True)
        (ck / name).write_text(text)
    before = tree(ck)
    r = cli("finetune", "--model", tiny_bert, "--data", train_tsv, "--out", tmp_path / "m",
            "--epochs", "1", "--batch-size", "8", "--cpu", "--json")  # fmt: skip
    user_error(r, "not made by nlpress")
    assert tree(ck) == before and not (tmp_path / "m").exists()


def test_distill_keeps_a_checkpoint_folder_it_did_not_make(
    tmp_path, cli, tiny_classifier, train_tsv, tree, user_error
):
    ck = tmp_path / "s.checkpoints"
    ck.mkdir()
    (ck / "README.txt").write_text("x")
    before = tree(ck)
    r = cli("distill", "--teacher", tiny_classifier, "--student-layers", "1", "--data", train_tsv,
            "--out", tmp_path / "s", "--cpu", "--json")  # fmt: skip
    user_error(r, "not made by nlpress")
    assert tree(ck) == before


def test_out_symlink_with_force_writes_the_folder_it_points_to(tmp_path):
    real = tmp_path / "real"
    with atomic_artifact(real, force=False) as tmp:
        (tmp / META).write_text(json.dumps({"format_version": artifact.FORMAT_VERSION}))
    link = tmp_path / "link"
    link.symlink_to(real)
    with atomic_artifact(link, force=True) as tmp:
        (tmp / META).write_text(json.dumps({"format_version": artifact.FORMAT_VERSION}))
        (tmp / "new.txt").write_text("new")
    assert link.is_symlink() and (link / "new.txt").read_text() == "new"
    assert not [p for p in tmp_path.iterdir() if ".nlpress-" in p.name]


def test_a_leftover_symlink_from_an_older_run_is_removed(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    with atomic_artifact(out, force=False) as tmp:
        (tmp / META).write_text(json.dumps({"format_version": artifact.FORMAT_VERSION}))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".out{artifact.OLD_TAG}{dead}"
    stale.symlink_to(tmp_path / "somewhere")
    with atomic_artifact(out, force=True) as tmp:
        (tmp / META).write_text(json.dumps({"format_version": artifact.FORMAT_VERSION}))
    assert not stale.is_symlink() and not stale.exists()
