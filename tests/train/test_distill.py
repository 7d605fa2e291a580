"""End to end on tiny models: distillation brings the student closer to the teacher, finetune
learns, the artifacts work with load / eval / bench / compress, and bad inputs write nothing."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import nlpress
from nlpress.bench.harness import BenchConfig
from nlpress.cli import main
from nlpress.errors import NlpressError
from nlpress.train.distill import DistillConfig
from nlpress.train.loop import TrainConfig

POS, NEG = "great good fun best love".split(), "terrible bad boring worst hate".split()
FILL = "the a movie film plot story actor and but very it this".split()


def _rows(n: int, seed: int = 0) -> list[tuple[str, int]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        y = i % 2
        words = [rnd.choice(FILL) for _ in range(rnd.randint(2, 6))]
        words.insert(rnd.randrange(len(words) + 1), rnd.choice(POS if y else NEG))
        out.append((" ".join(words), y))
    return out


@pytest.fixture()
def train_tsv(tmp_path) -> Path:
    p = tmp_path / "train.tsv"
    p.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in _rows(160)))
    return p


@pytest.fixture()
def text_file(tmp_path) -> Path:
    p = tmp_path / "sentences.txt"
    p.write_text("".join(f"{s}\n" for s, _ in _rows(160, seed=1)))
    return p


def _logits(folder, texts):
    return nlpress.load(folder).run(texts)


@pytest.fixture(scope="module")
def teacher(tiny_bert, tmp_path_factory):
    """tiny_bert fine-tuned into a sentiment classifier: a teacher with opinions."""
    folder = tmp_path_factory.mktemp("teacher")
    data = folder / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in _rows(160)))
    cfg = TrainConfig(epochs=12, batch_size=16, lr=3e-3, cpu=True, patience=4)
    return nlpress.finetune(tiny_bert, data=data, out=folder / "ft", train=cfg, eval_split=0.2, progress=False)  # fmt: skip


def _random_student(teacher_dir: Path, folder: Path) -> Path:
    """A fresh 1-layer model with the teacher's tokenizer and labels."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    cfg = AutoConfig.from_pretrained(teacher_dir)
    cfg.num_hidden_layers = 1
    torch.manual_seed(5)
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(folder)
    AutoTokenizer.from_pretrained(teacher_dir).save_pretrained(folder)
    return folder


def test_distill_improves_agreement_with_the_teacher(teacher, train_tsv, tmp_path):
    from nlpress.evaluate.fidelity import logits_fidelity

    texts = [s for s, _ in _rows(64, seed=7)]  # not the training rows
    t_logits = _logits(teacher.path, texts)
    student = _random_student(teacher.path, tmp_path / "random-student")
    before = logits_fidelity(t_logits, _logits(student, texts))
    cfg = TrainConfig(epochs=6, batch_size=16, lr=3e-3, cpu=True)
    art = nlpress.distill(
        teacher.path, train_tsv, tmp_path / "student", student=student, train=cfg,
        config=DistillConfig(alpha=1.0, temperature=2.0), bench_rounds=1, progress=False,
    )  # fmt: skip
    after = logits_fidelity(t_logits, _logits(art.path, texts))
    assert after["kl_mean"] < 0.7 * before["kl_mean"], (before, after)
    assert after["top1_agreement"] >= 0.9 > before["top1_agreement"], (before, after)
    m = json.loads((art.path / "metrics.json").read_text())
    assert m["student"] == str(student) and m["steps"] == 6 * (144 // 16)
    assert m["layer_pairs"] == [[0, 1]]  # the 1-layer student learns the last teacher layer
    assert m["history"][-1]["loss"] < m["history"][0]["loss"]
    assert m["comparison"]["student"]["vs_teacher"]["size_fraction"] < 1.0
    assert (art.path / "training_curves.png").is_file() and (art.path / "report.md").is_file()
    assert not (tmp_path / "student.checkpoints").exists()  # dropped once the artifact is written


def test_layer_subset_distillation_keeps_accuracy(teacher, train_tsv, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=16, lr=2e-3, cpu=True)
    art = nlpress.distill(teacher.path, train_tsv, tmp_path / "s", student_layers="0,", train=cfg, bench_rounds=0, progress=False)  # fmt: skip
    comp = art.metrics["comparison"]
    assert art.metrics["student"] == {"teacher_layers": [0]}
    assert [tuple(p) for p in art.metrics["layer_pairs"]] == [(0, 1)]  # last to last
    assert comp["student"]["quality"]["accuracy"] >= 0.9 * comp["teacher"]["quality"]["accuracy"]


def test_hidden_and_attention_losses_train(tiny_classifier, train_tsv, tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-3, cpu=True, max_steps=3)
    for att in ("kl", "mse"):
        art = nlpress.distill(
            tiny_classifier, train_tsv, tmp_path / f"s-{att}", student_layers=[0], train=cfg,
            config=DistillConfig(hidden_weight=1.0, attention_weight=1.0, attention_loss=att),
            bench_rounds=0, progress=False,
        )  # fmt: skip
        h = art.metrics["history"]
        assert len(h) == 3 and all(r["hidden_loss"] > 0 and r["attention_loss"] > 0 for r in h)


def test_embedding_student_from_plain_text_and_int8_after(tiny_bert, text_file, tmp_path, sts_file):
    cfg = TrainConfig(epochs=4, batch_size=16, lr=3e-3, cpu=True)
    art = nlpress.distill(
        tiny_bert, text_file, tmp_path / "emb", student_layers=1, train=cfg,
        bench_rounds=0, progress=False,
    )  # fmt: skip
    evals = art.metrics["evals"]
    assert art.metrics["heldout_metric"] == "cosine" and evals[-1]["cosine"] > evals[0]["cosine"]
    fid = art.metrics["comparison"]["student"]["fidelity"]
    assert fid["cosine_mean"] > 0.9
    m = nlpress.load(art.path)
    assert m.task == "sentence-embedding" and m.encode(["a cat sat"]).shape == (1, 32)
    # a recipe can follow distillation: quantize the student
    q = nlpress.compress(art.path, data=sts_file, recipe="int8", out=tmp_path / "q", bench=BenchConfig(rounds=1, latency_samples=2, throughput_batches=1, progress=False), memory=False, progress=False)  # fmt: skip
    assert (q.path / "model.onnx").is_file() and q.metrics["result"]["fidelity"][
        "cosine_mean"
    ] > 0.9


def test_finetune_learns_and_the_artifact_is_a_model(teacher, tiny_bert, train_tsv, capsys):
    art = teacher
    m = art.metrics
    assert m["data"]["split"]["n_heldout"] == 32 and m["data"]["split"]["seed"] == 0
    assert m["best"]["accuracy"] >= 90.0, m["evals"]
    pred = nlpress.load(art.path).predict(["a great fun movie", "a terrible boring plot"])
    assert pred.labels == ["1", "0"]
    assert main(["eval", str(art.path), "--data", str(train_tsv), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quality"]["accuracy"] >= 90.0
    assert main(["bench", str(art.path), "--vs", str(tiny_bert), "--task", "text-classification", "--rounds", "1", "--no-memory", "--json"]) == 0  # fmt: skip
    capsys.readouterr()


def test_same_split_for_the_same_seed(tiny_bert, train_tsv, tmp_path):
    from nlpress.train.data import heldout_split

    a, b = heldout_split(100, 0.1, 0), heldout_split(100, 0.1, 0)
    assert a.heldout == b.heldout and len(a.heldout) == 10 and not set(a.heldout) & set(a.train)
    assert heldout_split(100, 0.1, 1).heldout != a.heldout


def _other_vocab_classifier(folder: Path, labels: dict[int, str], shift: str = "") -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *(f"{shift}{w}" for w in POS + NEG + FILL),
    ]
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(vocab))
    tok = BertTokenizerFast(vocab=str(folder / "vocab.txt"))
    cfg = BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=len(labels),
        id2label=labels, label2id={v: k for k, v in labels.items()},
    )  # fmt: skip
    BertForSequenceClassification(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _fails(args: list[str], capsys, match: str, out: Path) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and match in err[0], err
    assert not out.exists() and not out.with_name(out.name + ".checkpoints").exists()
    assert not list(out.parent.glob(f".{out.name}*"))


def test_bad_inputs_write_nothing(tiny_classifier, train_tsv, tmp_path, capsys):
    out = tmp_path / "never"
    base = [
        "distill",
        "--teacher",
        str(tiny_classifier),
        "--data",
        str(train_tsv),
        "--out",
        str(out),
    ]
    _fails([*base, "--student-layers", "3"], capsys, "the teacher has 2 layers", out)
    _fails([*base, "--student-layers", "0,0"], capsys, "repeats", out)
    other = _other_vocab_classifier(tmp_path / "other-vocab", {0: "negative", 1: "positive"}, "x")
    _fails([*base, "--student", str(other)], capsys, "different tokenizers", out)
    three = tmp_path / "three-labels"
    _other_vocab_classifier(three, {0: "a", 1: "b", 2: "c"})
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (Path(tiny_classifier) / f).exists():
            (three / f).write_text((Path(tiny_classifier) / f).read_text())
    _fails([*base, "--student", str(three)], capsys, "labels", out)
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    _fails(["distill", "--teacher", str(tiny_classifier), "--data", str(empty), "--out", str(out)], capsys, "empty", out)  # fmt: skip
    header_only = tmp_path / "header.tsv"
    header_only.write_text("sentence\tlabel\n")
    _fails(["finetune", "--model", str(tiny_classifier), "--data", str(header_only), "--out", str(out)], capsys, "header.tsv", out)  # fmt: skip
    _fails([*base, "--temperature", "0"], capsys, "--temperature", out)
    _fails([*base, "--batch-size", "1000", "--student-layers", "1"], capsys, "no full batch", out)
    with pytest.raises(NlpressError, match="--resume"):
        nlpress.distill(
            tiny_classifier, train_tsv, out, student_layers=1, resume=True, progress=False
        )


def test_distill_cli_resume_matches_uninterrupted(
    tiny_classifier, train_tsv, tmp_path, capsys, monkeypatch
):
    """The CLI path: a run stopped after a checkpoint, resumed with --resume, gives the same student."""
    from nlpress.train import loop

    args = ["distill", "--teacher", str(tiny_classifier), "--student-layers", "1", "--data", str(train_tsv),
            "--epochs", "2", "--batch-size", "16", "--checkpoint-every", "3", "--no-bench", "--cpu", "--json"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    real = loop._one_step
    calls = {"n": 0}

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loop, "_one_step", dying)
    assert main([*args, "--out", str(tmp_path / "b")]) == 130
    assert not (tmp_path / "b").exists() and (tmp_path / "b.checkpoints" / "last").is_dir()
    monkeypatch.setattr(loop, "_one_step", real)
    assert main([*args, "--out", str(tmp_path / "b"), "--resume"]) == 0
    capsys.readouterr()
    from safetensors.numpy import load_file

    wa, wb = (
        load_file(tmp_path / "a" / "model.safetensors"),
        load_file(tmp_path / "b" / "model.safetensors"),
    )
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
