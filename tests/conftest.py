"""Tiny models built from configs, saved as real Hugging Face folders (nothing downloaded)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the machine-peak cache (nlpress.bench.peak) of a test run lives in its own temporary folder
if "NLPRESS_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["NLPRESS_CACHE_DIR"] = tempfile.mkdtemp(prefix="nlpress-test-cache-")

WORDS = (
    "the a an is was good bad movie film great terrible plot actor story fun boring not very and "
    "but it this that of to in on with for cat dog sat mat man woman playing guitar piano quick "
    "brown fox jumps over lazy day night love hate best worst"
).split()


def _tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *WORDS,
        *"abcdefghijklmnopqrstuvwxyz.,!?",
    ]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    tok.model_max_length = 128
    return tok, len(vocab)


def _bert_config(vocab_size: int, **kw):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        **kw,
    )


def _save(model, tok, folder: Path) -> Path:
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT encoder: a sentence-embedding model."""
    import torch
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok, n = _tokenizer(folder)
    torch.manual_seed(0)
    return _save(BertModel(_bert_config(n)).eval(), tok, folder)


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory) -> Path:
    import torch
    from transformers import BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-cls")
    tok, n = _tokenizer(folder)
    torch.manual_seed(1)
    cfg = _bert_config(
        n,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    return _save(BertForSequenceClassification(cfg).eval(), tok, folder)


def _llama(folder: Path, seed: int, width: int, tie: bool) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok, n = _tokenizer(folder)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=n,
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        tie_word_embeddings=tie,
    )
    return _save(LlamaForCausalLM(cfg).eval(), tok, folder)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return _llama(tmp_path_factory.mktemp("tiny-llama"), seed=2, width=32, tie=False)


@pytest.fixture()
def llama_model(tiny_llama):
    """A fresh fp32 copy of the tiny Llama, for tests that modify it in place."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()


@pytest.fixture()
def llama_batches(llama_model) -> list[dict]:
    """Two seeded calibration batches of 2 x 12 random token ids for ``llama_model``."""
    import torch

    g = torch.Generator().manual_seed(0)
    vocab = llama_model.config.vocab_size
    return [
        {
            "input_ids": (ids := torch.randint(5, vocab, (2, 12), generator=g)),
            "attention_mask": torch.ones_like(ids),
        }
        for _ in range(2)
    ]


def _inputs_of(model, module, batches):
    """Every input row that ``module`` sees in plain forwards of ``model``: (rows, in)."""
    import torch

    rows = []
    h = module.register_forward_hook(
        lambda _m, a, _o: rows.append(a[0].reshape(-1, a[0].shape[-1]))
    )
    with torch.no_grad():
        for b in batches:
            model(**b, use_cache=False)
    h.remove()
    return torch.cat(rows)


@pytest.fixture()
def inputs_of():
    """``inputs_of(model, module, batches)``: the rows a module sees in plain forwards."""
    return _inputs_of


@pytest.fixture()
def sst_file(tmp_path) -> Path:
    p = tmp_path / "sst.tsv"
    rows = [
        "the movie was great fun",
        "a terrible boring plot",
        "the best film",
        "the worst story",
        "i love this movie",
        "i hate this film",
        "not very good",
        "very good and fun",
    ]
    labels = [1, 0, 1, 0, 1, 0, 0, 1]
    p.write_text(
        "sentence\tlabel\n" + "".join(f"{r}\t{y}\n" for r, y in zip(rows, labels, strict=True))
    )
    return p


@pytest.fixture()
def sts_file(tmp_path) -> Path:
    p = tmp_path / "sts.tsv"
    head = (
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    )
    pairs = [
        ("a man is playing a guitar", "a man plays the guitar", 4.8),
        ("a cat sat on the mat", "a dog sat on the mat", 2.5),
        ("the quick brown fox", "a lazy dog", 0.4),
        ("a woman is playing piano", "a woman plays the piano", 4.6),
        ("the dog jumps over the cat", "a movie about love", 0.1),
        ("good movie", "great film", 3.9),
    ]
    body = "".join(
        f"{i}\tmain\tx\t2012\t{i}\tnone\tnone\t{a}\t{b}\t{s:.3f}\n"
        for i, (a, b, s) in enumerate(pairs)
    )
    p.write_text(head + body)
    return p


@pytest.fixture(scope="session")
def tiny_llama128(tmp_path_factory) -> Path:
    """A 2-layer Llama 128 wide (group size 128 divides every layer), embeddings tied to the head."""
    return _llama(tmp_path_factory.mktemp("tiny-llama128"), seed=3, width=128, tie=True)


@pytest.fixture()
def lm_corpus(tmp_path) -> Path:
    """About 3,000 words of plain text from the tiny vocabulary (calibration and perplexity)."""
    import random

    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(12)) + " ." for _ in range(250)]
    p = tmp_path / "corpus.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


# -- artifacts and their model cards (tests/report/test_model_card.py, tests/models/test_hf_loaders.py)
def _build(model, task, recipe, out: Path, data=None, overrides=(), limit=8) -> Path:
    import nlpress
    from nlpress.bench.harness import BenchConfig

    nlpress.compress(
        model,
        task,
        data,
        recipe,
        out,
        overrides=list(overrides),
        limit=limit,
        bench=BenchConfig(rounds=1, seq_len=16, progress=False),
        memory=False,
        progress=False,
        force=True,
    )
    return out


def _card(folder: Path) -> tuple[dict, str]:
    import yaml

    text = (folder / "README.md").read_text()
    m = re.match(r"---\n(.*?)\n---\n(.*)", text, flags=re.S)
    assert m, text[:200]
    return yaml.safe_load(m.group(1)), m.group(2)


def _card_code(folder: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", _card(folder)[1], flags=re.S)


def _run_card_code(folder: Path, code: str) -> dict:
    """Run one snippet exactly as the card shows it, from inside the artifact folder."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        ns: dict = {}
        exec(compile(code, str(folder / "README.md"), "exec"), ns)  # noqa: S102 - our own card
        return ns
    finally:
        os.chdir(cwd)


@pytest.fixture()
def hf():
    """``hf.build(model, task, recipe, out, data, overrides)`` a fast artifact; ``hf.card(dir)``
    its (front matter, body); ``hf.card_code(dir)`` its snippets; ``hf.run_card_code(dir, code)``
    runs one from inside the folder and returns its variables."""
    return SimpleNamespace(
        build=_build, card=_card, card_code=_card_code, run_card_code=_run_card_code
    )
