"""Layer-subset students copy the right weights; a student with every layer is the teacher."""

from __future__ import annotations

import pytest
import torch

from nlpress.errors import NlpressError
from nlpress.train.student import block_list, layer_subset_student, parse_layers


def _teacher(n_layers: int = 4):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=n_layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
    )
    return BertForSequenceClassification(cfg).eval()


def test_parse_layers():
    assert parse_layers(3, 6) == [0, 2, 4]  # every other layer, DistilBERT style
    assert parse_layers("6", 12) == [0, 2, 4, 6, 8, 10]
    assert parse_layers("0,2,5", 6) == [0, 2, 5]
    assert parse_layers([1], 2) == [1]
    assert parse_layers("1,", 2) == [1]
    # sentence embeddings: first to last layer, whose output the pooled embedding lives in
    assert parse_layers(3, 6, keep_last=True) == [0, 3, 5]
    assert parse_layers(4, 6, keep_last=True) == [0, 2, 3, 5]
    assert parse_layers(1, 6, keep_last=True) == [5]
    assert parse_layers("0,2,4", 6, keep_last=True) == [0, 2, 4]  # a list is taken as given
    for bad in ("7", "0,6", "a,b", "0,0", 0):
        with pytest.raises(NlpressError):
            parse_layers(bad, 6)


def test_layer_selection_copies_the_right_weights():
    teacher = _teacher(4)
    student = layer_subset_student(teacher, [1, 3])
    assert student.config.num_hidden_layers == 2 and len(block_list(student)) == 2
    t_sd, s_sd = teacher.state_dict(), student.state_dict()
    for s_idx, t_idx in enumerate([1, 3]):
        for key, value in s_sd.items():
            prefix = f"bert.encoder.layer.{s_idx}."
            if key.startswith(prefix):
                t_key = f"bert.encoder.layer.{t_idx}." + key[len(prefix) :]
                assert torch.equal(value, t_sd[t_key]), key
    for key in ("bert.embeddings.word_embeddings.weight", "classifier.weight"):
        assert torch.equal(s_sd[key], t_sd[key])
    # copied, not shared: training the student leaves the teacher alone
    with torch.no_grad():
        block_list(student)[0].output.dense.weight.add_(1.0)
    assert not torch.equal(
        block_list(student)[0].output.dense.weight, block_list(teacher)[1].output.dense.weight
    )
    assert len(block_list(teacher)) == 4


def test_student_with_all_layers_equals_teacher(tmp_path):
    from transformers import AutoModelForSequenceClassification

    teacher = _teacher(3)
    student = layer_subset_student(teacher, [0, 1, 2])
    x = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(student(input_ids=x).logits, teacher(input_ids=x).logits)
    # a subset student saves and reloads as a normal Hugging Face model
    sub = layer_subset_student(teacher, [0, 2])
    sub.save_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=x).logits, sub(input_ids=x).logits)


def test_llama_student(tiny_llama):
    from transformers import AutoModelForCausalLM

    teacher = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    student = layer_subset_student(teacher, [1])
    assert student.config.num_hidden_layers == 1
    assert block_list(student)[0].self_attn.layer_idx == 0
    x = torch.randint(0, 50, (1, 6))
    with torch.no_grad():
        assert student(input_ids=x).logits.shape == teacher(input_ids=x).logits.shape
        full = layer_subset_student(teacher, [0, 1])
        torch.testing.assert_close(full(input_ids=x).logits, teacher(input_ids=x).logits)
