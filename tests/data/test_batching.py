"""Batching by length with a real (tiny, offline) BERT tokenizer, and the round trip back."""

from __future__ import annotations

import numpy as np
import pytest

from nlpress.data.batching import length_sorted_batches, pad_batch, restore_order, tokenize_batches
from nlpress.errors import NlpressError

WORDS = "the cat sat on a mat dog ran to park big small red blue and".split()


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import BertTokenizerFast

    vocab = tmp_path_factory.mktemp("tok") / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    # transformers 5 takes the vocab file as `vocab=`; `vocab_file=` is silently ignored there.
    tok = BertTokenizerFast(vocab=str(vocab))
    assert len(tok) == 5 + len(WORDS)
    return tok


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 12))) for _ in range(n)]


def test_length_sorted_batches_is_deterministic() -> None:
    assert length_sorted_batches([3, 5, 1, 5, 2], 2) == [[1, 3], [0, 4], [2]]
    assert length_sorted_batches([], 4) == []
    with pytest.raises(NlpressError, match="batch size"):
        length_sorted_batches([1], 0)


def test_batches_are_padded_to_their_longest_row(tokenizer) -> None:
    texts = sentences(23)
    batches = list(tokenize_batches(tokenizer, texts, batch_size=5))
    assert sorted(i for idx, _ in batches for i in idx) == list(range(23))
    widths = [batch["input_ids"].shape[1] for _, batch in batches]
    assert widths == sorted(widths, reverse=True)
    for idx, batch in batches:
        assert set(batch) == {"input_ids", "token_type_ids", "attention_mask"}
        width = batch["input_ids"].shape[1]
        assert all(v.dtype == np.int64 and v.shape == (len(idx), width) for v in batch.values())
        assert batch["attention_mask"].sum(1).max() == batch["input_ids"].shape[1]
        for row, i in enumerate(idx):  # same ids as tokenizing the row alone
            alone = tokenizer(texts[i])["input_ids"]
            assert batch["input_ids"][row, : len(alone)].tolist() == alone
            assert batch["attention_mask"][row].sum() == len(alone)


def test_padding_matches_tokenizer_pad(tokenizer) -> None:
    pairs = [(a, b) for a, b in zip(sentences(7, 1), sentences(7, 2), strict=True)]
    for idx, batch in tokenize_batches(tokenizer, pairs, batch_size=3):
        encoded = tokenizer([pairs[i][0] for i in idx], [pairs[i][1] for i in idx])
        expected = tokenizer.pad(encoded, return_tensors="np")
        for key in expected:
            np.testing.assert_array_equal(batch[key], expected[key])
        assert all(v.dtype == np.int64 for v in batch.values())


def test_truncation_to_max_length(tokenizer) -> None:
    texts = [" ".join(["cat"] * 40), "dog"]
    (idx, batch), (idx2, batch2) = tokenize_batches(tokenizer, texts, batch_size=1, max_length=8)
    assert idx == [0] and batch["input_ids"].shape == (1, 8)
    assert idx2 == [1] and batch2["input_ids"].shape == (1, 3)


def test_restore_order_inverts_the_sorting(tokenizer) -> None:
    texts = sentences(31, 3)
    chunks = []
    for idx, batch in tokenize_batches(tokenizer, texts, batch_size=4):
        lengths = batch["attention_mask"].sum(1)  # a per-row "output": (B,)
        chunks.append((idx, np.stack([lengths, lengths * 10], axis=1)))  # (B, 2)
    restored = restore_order(chunks, len(texts))
    expected = [len(tokenizer(t)["input_ids"]) for t in texts]
    assert restored.shape == (31, 2) and restored[:, 0].tolist() == expected


def test_restore_order_checks_coverage() -> None:
    with pytest.raises(ValueError, match="no output"):
        restore_order([([0, 2], np.zeros((2, 3)))], 3)
    with pytest.raises(ValueError, match="more than one"):
        restore_order([([0, 1], np.zeros(2)), ([1, 2], np.ones(2))], 3)
    assert restore_order([], 0).shape == (0,)


def test_pad_batch_left() -> None:
    out = pad_batch({"input_ids": [[5, 6], [7]]}, {"input_ids": 0}, left=True)
    assert out["input_ids"].tolist() == [[5, 6], [0, 7]]


def test_mixed_inputs_rejected(tokenizer) -> None:
    with pytest.raises(ValueError, match="mix"):
        list(tokenize_batches(tokenizer, ["a", ("b", "c")], batch_size=2))
    assert list(tokenize_batches(tokenizer, [], batch_size=2)) == []


def test_vocab_file_is_read(tokenizer) -> None:
    assert tokenizer("the cat")["input_ids"] == [2, 5, 6, 3]
