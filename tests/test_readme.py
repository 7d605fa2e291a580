"""Every command and code block in the README runs (STYLE.md: README commands are tested).

Placeholders are mapped to tiny local models and files: ./my-bert -> a tiny classifier,
dev.tsv -> a small SST-2-style file, ./my-llama -> a tiny Llama, wiki.txt -> a plain text, pairs.tsv -> an MRPC-style file, recipe.yaml -> the recipe
shown in the README itself. Benchmarks run with --rounds 1 --no-memory to keep the suite fast;
the demo (`nlpress compress` on the real default model) is marked slow.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from nlpress.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def _commands() -> list[list[str]]:
    cmds = []
    for block in _blocks("sh"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("nlpress "):
                cmds.append(shlex.split(line)[1:])
    return cmds


def _training_files(tmp_path: Path, tiny_bert: Path, sst_file: Path) -> None:
    """train.tsv, sentences.txt, ./my-base and ./my-encoder (tiny_bert), ./my-small (a 1-layer
    classifier with tiny_bert's tokenizer and the labels finetune gives train.tsv: "0", "1")."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    rows = sst_file.read_text().splitlines()[1:] * 6
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    texts = [r.split("\t")[0] for r in rows[:8]]
    pairs = [f"{a} and {b}" for a in texts for b in texts]  # 64 distinct sentences, no labels
    (tmp_path / "sentences.txt").write_text("\n".join(pairs) + "\n")
    (tmp_path / "my-base").symlink_to(tiny_bert)
    (tmp_path / "my-encoder").symlink_to(tiny_bert)
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    cfg = BertConfig.from_pretrained(tiny_bert, num_hidden_layers=1, num_labels=2)
    cfg.id2label, cfg.label2id = {0: "0", 1: "1"}, {"0": 0, "1": 1}
    BertForSequenceClassification(cfg).save_pretrained(tmp_path / "my-small")
    tok.save_pretrained(tmp_path / "my-small")


@pytest.fixture()
def workdir(tmp_path, monkeypatch, tiny_classifier, tiny_bert, sst_file, tiny_llama128, lm_corpus):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dev.tsv").write_text(sst_file.read_text())
    (tmp_path / "pairs.tsv").write_text(
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        "1\t1\t2\tthe movie was great\tthe film was great\n0\t3\t4\ta cat sat\ta dog ran\n"
        "1\t5\t6\ti love this movie\ti love this film\n0\t7\t8\tbad plot\tgreat fun\n"
    )
    (tmp_path / "recipe.yaml").write_text(_blocks("yaml")[0])
    prune = next(b for b in _blocks("yaml") if "prune-structured" in b)
    (tmp_path / "prune-int8.yaml").write_text(prune)
    recover = next(b for b in _blocks("yaml") if "- recover:" in b)
    (tmp_path / "prune-recover.yaml").write_text(recover)
    (tmp_path / "my-bert").symlink_to(tiny_classifier)
    (tmp_path / "my-llama").symlink_to(tiny_llama128)
    (tmp_path / "wiki.txt").write_text(lm_corpus.read_text())
    _training_files(tmp_path, tiny_bert, sst_file)
    return tmp_path


def _fast(args: list[str]) -> list[str]:
    if args[0] in ("compress", "bench"):
        args = [*args, "--rounds", "1", "--no-memory"]
    if args[0] in ("finetune", "distill"):
        args = [*args, "--max-steps", "2", "--batch-size", "8", "--cpu"]
    if args[0] == "distill":
        args = [*args, "--rounds", "1"]
    return args


def test_readme_has_the_commands():
    cmds = _commands()
    assert len(cmds) >= 6 and {c[0] for c in cmds} == {
        "compress",
        "eval",
        "bench",
        "finetune",
        "distill",
    }


def test_readme_commands_run(workdir, capsys):
    for args in _commands():
        if args == ["compress"]:
            continue  # the demo on the real model: see test_readme_demo
        assert main(_fast(args)) == 0, args
        out = capsys.readouterr().out
        if "--json" in args:
            json.loads(out)
    assert (workdir / "out-bert" / "model.onnx").is_file()
    assert (workdir / "out-yaml" / "recipe.yaml").is_file()
    for art in ("teacher", "student", "student-0", "student-given", "emb-student"):
        assert (workdir / art / "metrics.json").is_file(), art
    assert (workdir / "student-int8" / "model.onnx").is_file()
    for art in ("out-m90g", "out-recovered"):  # pruning with training
        assert (workdir / art / "metrics.json").is_file(), art


@pytest.mark.slow
def test_readme_demo_and_python_block(workdir, capsys):
    assert main(_fast(["compress"])) == 0
    assert "cosine_mean" in capsys.readouterr().out
    code = _blocks("python")[0]
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - our own README
    assert (workdir / "out" / "metrics.json").is_file()
