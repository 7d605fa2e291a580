"""The training loop: resume after a kill gives the same weights, a crash while checkpointing
keeps the last good checkpoint, and two DDP processes match one process at the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from nlpress.errors import NlpressError
from nlpress.train import loop
from nlpress.train.loop import TrainConfig, TrainTask, train


class _Net(nn.Module):
    """A small regressor with dropout, so resuming must restore the RNG state too."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))

    def forward(self, x, y):
        return nn.functional.mse_loss(self.body(x).squeeze(-1), y), {}


def _task() -> TrainTask:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(40, generator=g)

    def make_batch(rows, device):
        return {"x": x[rows].to(device), "y": y[rows].to(device)}

    def evaluate(m):
        with torch.no_grad():
            return {"loss": float(m(x[:8], y[:8])[0])}

    return TrainTask(_Net(), 40, make_batch, evaluate, "loss", False)


CFG = dict(epochs=3, batch_size=8, lr=1e-2, checkpoint_every=2, cpu=True, eval_every=100)


class _Kill(Exception):
    pass


def _killer(at: int):
    def cb(model, step):
        if step == at:
            raise _Kill(f"killed at step {step}")

    return cb


def test_resume_after_kill_reaches_the_same_weights(tmp_path):
    cfg = TrainConfig(**CFG)  # 5 steps an epoch, 15 in all; checkpoints every 2 steps
    full, res_full = train(_task(), cfg, tmp_path / "a", progress=False)
    with pytest.raises(_Kill):  # killed mid-epoch 2 (step 8), after the checkpoint of step 8
        train(_task(), cfg, tmp_path / "b", callbacks=[_killer(9)], progress=False)
    saved = json.loads((tmp_path / "b" / "last" / "trainer.json").read_text())
    assert saved["step"] == 8 and saved["epoch"] == 1 and saved["step_in_epoch"] == 3
    resumed, res = train(_task(), cfg, tmp_path / "b", resume=True, progress=False)
    assert res.steps == res_full.steps == 15
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0)
    assert [h["loss"] for h in res.history] == [h["loss"] for h in res_full.history]


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(NlpressError, match="no checkpoint"):
        train(_task(), TrainConfig(**CFG), tmp_path / "none", resume=True, progress=False)


def test_crash_while_checkpointing_keeps_the_last_good_one(tmp_path, monkeypatch):
    cfg = TrainConfig(**CFG)
    real = loop._write_state
    calls = {"n": 0}

    def crashing(acc, path):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint dies half-written
            real(acc, path)
            (Path(path) / "model.safetensors").write_bytes(b"half")
            raise OSError("disk full")
        real(acc, path)

    monkeypatch.setattr(loop, "_write_state", crashing)
    with pytest.raises(OSError, match="disk full"):
        train(_task(), cfg, tmp_path / "c", progress=False)
    last = loop.last_checkpoint(tmp_path / "c")
    assert last is not None and last.name == "last"
    assert json.loads((last / "trainer.json").read_text())["step"] == 2
    monkeypatch.setattr(loop, "_write_state", real)
    _, res = train(_task(), cfg, tmp_path / "c", resume=True, progress=False)  # still loads
    assert res.steps == 15


def test_batch_must_split_over_processes_and_fill_a_batch():
    with pytest.raises(NlpressError, match="no full batch"):
        train(_task(), TrainConfig(**{**CFG, "batch_size": 64}), None, progress=False)


def _no_dropout_classifier(folder: Path) -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = "the a movie film good bad great terrible fun boring love hate not very plot".split()
    (folder / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])
    )
    tok = BertTokenizerFast(vocab=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=20, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    BertForSequenceClassification(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.skipif(
    not Path(sys.executable).with_name("accelerate").exists(), reason="needs accelerate's launcher"
)
def test_two_processes_match_one_process(tmp_path):
    """``accelerate launch --multi_gpu --num_processes 2`` with nlpress ``--cpu`` (DDP over gloo on
    the CPU) vs one process, global batch 8. (accelerate 1.15's own ``--cpu`` flag picks its
    single-process launcher, so two CPU processes are started through the torchrun launcher.)"""
    teacher = _no_dropout_classifier(
        tmp_path / "teacher" if (tmp_path / "teacher").mkdir() is None else None
    )
    rows = ["the movie was good", "a bad film", "great fun", "terrible plot", "i love this film",
            "i hate this movie", "not very good", "very good fun"] * 3  # fmt: skip
    data = tmp_path / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{r}\t{i % 2}\n" for i, r in enumerate(rows)))
    args = ["distill", "--teacher", str(teacher), "--student-layers", "1", "--data", str(data),
            "--max-steps", "3", "--batch-size", "8", "--lr", "1e-2", "--eval-split", "0",
            "--rounds", "1", "--cpu", "--json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    acc = str(Path(sys.executable).with_name("accelerate"))
    two = subprocess.run(
        [acc, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "-m", "nlpress.cli", *args, "--out", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-2000:]
    one = subprocess.run(
        [sys.executable, "-m", "nlpress.cli", *args, "--out", str(tmp_path / "one")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert m2["num_processes"] == 2 and m1["num_processes"] == 1
    l1, l2 = [h["loss"] for h in m1["history"]], [h["loss"] for h in m2["history"]]
    assert len(l1) == len(l2) == 3
    assert l1[0] != l1[-1]  # the weights did move
    for a, b in zip(l1, l2, strict=True):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (l1, l2)


def test_bf16_mixed_precision_and_grad_accum_train():
    """bf16 autocast runs on the CPU; 2 micro-batches of 4 make one optimizer step of 8 rows."""
    cfg = TrainConfig(**{**CFG, "batch_size": 4, "grad_accum": 2, "mixed_precision": "bf16"})
    _, res = train(_task(), cfg, None, progress=False)
    assert res.steps == 15 and all(torch.isfinite(torch.tensor(h["loss"])) for h in res.history)
    assert res.history[-1]["loss"] < res.history[0]["loss"]
