"""Every command and code block in README.md and docs/ runs (STYLE.md: README commands are tested).

Placeholders are mapped to tiny local models and files: ./my-bert -> a tiny classifier,
dev.tsv -> a small SST-2-style file, ./my-llama -> a tiny Llama, wiki.txt -> a plain text,
pairs.tsv -> an MRPC-style file, recipe.yaml -> the recipe shown in the README itself. Benchmarks
run with --rounds 1 --no-memory to keep the suite fast; `nlpress push` runs up to the hub, whose
two calls (create_repo, upload_folder) are recorded instead; the demo (`nlpress compress` on the
real default model) and the Python blocks that use its `out/` are marked slow.

docs/results.md shows the benchmark commands behind its figures; they take minutes to hours, so
they are not run here: each must name a script in benchmarks/ and use only options that the
script's --help lists. docs/recipes.md's YAML must be a valid recipe.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from nlpress.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "docs" / "results.md"


def _blocks(lang: str, doc: Path = README) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", doc.read_text(), flags=re.S)


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
def hub_recorded(monkeypatch, tmp_path):
    """The hub switched on with a token, and HfApi's network calls recorded, not made."""
    from huggingface_hub import HfApi, constants

    calls = []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr(
        HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(repo_id) or f"hub/{repo_id}"
    )
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(kw["folder_path"]))
    return calls


@pytest.fixture()
def workdir(
    tmp_path,
    monkeypatch,
    hub_recorded,
    tiny_classifier,
    tiny_bert,
    sst_file,
    tiny_llama128,
    lm_corpus,
):
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
        "push",
        "tune",
    }


def test_readme_commands_run(workdir, capsys, hub_recorded):
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
    for card in workdir.glob("*/README.md"):  # every artifact carries a model card
        front = card.read_text().split("\n---\n", 1)[0]
        assert front.startswith("---\n") and "\nlibrary_name: " in front and "nlpress" in front
    assert {p.parent.name for p in workdir.glob("*/README.md")} >= {
        "out-bert",
        "teacher",
        "student",
    }
    assert "someone/my-bert-int8" in hub_recorded  # nlpress push, up to the hub's two calls
    assert (workdir / "tuned" / "best" / "nlpress.json").is_file()  # nlpress tune's choice
    assert (workdir / "tuned" / "report.html").is_file()


@pytest.mark.slow
def test_readme_demo_and_python_blocks(workdir, capsys, hub_recorded):
    """The demo, then the Python API block (its push recorded), then the onnxruntime lines,
    which must be exactly the demo artifact's model card snippet and give nlpress's embeddings."""
    import numpy as np

    import nlpress
    from nlpress.report.snippets import PATH_LINE

    assert main(_fast(["compress"])) == 0
    assert "cosine_mean" in capsys.readouterr().out
    api, onnx = _blocks("python")
    exec(compile(api, "README.md", "exec"), {})  # noqa: S102 - our own README
    assert (workdir / "out" / "metrics.json").is_file() and "someone/minilm-int8" in hub_recorded
    ns: dict = {}
    exec(compile(onnx, "README.md", "exec"), ns)  # noqa: S102
    np.testing.assert_allclose(
        ns["embeddings"],
        nlpress.load("out").encode(["A first sentence.", "Another one."]),
        atol=1e-5,
    )
    card = (workdir / "out" / "README.md").read_text()
    readme_lines = onnx.replace('path = "out"  # the demo\'s artifact', PATH_LINE)
    assert readme_lines.strip() in card


def _benchmark_commands() -> list[list[str]]:
    cmds = []
    for block in _blocks("sh", RESULTS):
        for line in block.splitlines():
            if line.strip().startswith("python "):
                cmds.append(shlex.split(line)[1:])
    return cmds


def test_results_commands_name_real_scripts_and_options():
    """Each benchmark command: the script exists and its --help lists every option used."""
    import subprocess
    import sys

    cmds = _benchmark_commands()
    assert len(cmds) >= 12
    helps: dict[tuple, str] = {}
    for script, *args in cmds:
        assert script.startswith("benchmarks/") and (ROOT / script).is_file(), script
        words = tuple(a for a in args[:1] if not a.startswith("-"))  # a sub-command, if any
        if (script, words) not in helps:
            helps[(script, words)] = subprocess.run(
                [sys.executable, str(ROOT / script), *words, "--help"],
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout
        for a in args:
            if a.startswith("--"):
                assert a in helps[(script, words)], (script, a)


def test_docs_recipe_yaml_is_a_valid_recipe(tmp_path):
    import yaml

    from nlpress.recipe import recipe_from_dict

    for doc in (ROOT / "docs" / "recipes.md", README):
        for block in _blocks("yaml", doc):
            recipe_from_dict(yaml.safe_load(block))
