import subprocess
import sys

import numpy as np
import pytest
import torch

import nlpress
from nlpress.errors import NlpressError

TEXTS = [
    "a",
    "the movie was great fun and the plot was good",
    "bad film",
    "i love this movie very much",
]


def test_import_nlpress_is_light():
    code = "import sys, nlpress; print(any(m in sys.modules for m in ('torch', 'transformers', 'onnxruntime')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_restores_input_order(tiny_bert):
    p = nlpress.load(tiny_bert)
    together = p.encode(TEXTS, batch_size=2)
    one_by_one = np.concatenate([p.encode([t]) for t in TEXTS])
    assert together.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_predict_gives_labels_and_probabilities(tiny_classifier):
    p = nlpress.load(tiny_classifier)
    out = p.predict(TEXTS)
    assert set(out.labels) <= {"negative", "positive"} and len(out.labels) == len(TEXTS)
    np.testing.assert_allclose(out.probabilities.sum(1), 1.0, atol=1e-6)
    pairs = p.predict([("a cat", "a dog"), ("good", "bad")])
    assert pairs.probabilities.shape == (2, 2)


def test_wrong_method_for_task(tiny_bert):
    with pytest.raises(NlpressError, match="for text-classification models"):
        nlpress.load(tiny_bert).predict(TEXTS)


def test_perplexity_matches_torch_cross_entropy(tiny_llama):
    p = nlpress.load(tiny_llama)
    text = "the cat sat on the mat and the dog sat on the mat"
    ids = torch.tensor(p.tokenizer(text)["input_ids"])[None]
    with torch.no_grad():
        logits = p.module.model(input_ids=ids).logits
    want = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:]).exp().item()
    assert p.perplexity(text) == pytest.approx(want, rel=1e-5)


def test_empty_input_is_an_error(tiny_bert):
    with pytest.raises(NlpressError, match="no texts"):
        nlpress.load(tiny_bert).encode([])
