"""Masks: exact sparsity, the right entries removed (checked against plain loops), N:M groups."""

from __future__ import annotations

import pytest
import torch

from nlpress.errors import NlpressError
from nlpress.prune.masks import (
    apply_masks,
    global_masks,
    importance,
    keep_masks_callback,
    magnitude_mask,
    mask_sparsity,
    nm_mask,
)


@pytest.mark.parametrize("shape", [(6, 8), (7, 13), (1, 5), (64, 96)])
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.73, 0.9, 0.999])
def test_magnitude_mask_exact_count_and_lowest_removed(shape, sparsity):
    torch.manual_seed(sum(shape))
    scores = importance(torch.randn(shape), "l1")
    mask = magnitude_mask(scores, sparsity)
    removed = int((~mask).sum())
    assert removed == round(sparsity * scores.numel())
    if 0 < removed < scores.numel():  # every removed score <= every kept score
        assert scores[~mask].max() <= scores[mask].min()


def test_ties_are_broken_by_position_and_count_stays_exact():
    scores = torch.ones(4, 5)  # all tied
    mask = magnitude_mask(scores, 0.5)
    assert int((~mask).sum()) == 10
    assert not mask.reshape(-1)[:10].any() and mask.reshape(-1)[10:].all()


def test_l1_and_l2_rank_alike_and_match_reference():
    w = torch.tensor([[-3.0, 1.0, 0.5], [2.0, -0.1, 4.0]])
    assert torch.equal(importance(w, "l1"), w.abs())
    assert torch.equal(importance(w, "l2"), w * w)
    assert torch.equal(
        magnitude_mask(importance(w, "l1"), 0.5), magnitude_mask(importance(w, "l2"), 0.5)
    )
    assert magnitude_mask(importance(w, "l1"), 0.5).tolist() == [
        [True, False, False],
        [True, False, True],
    ]


def test_global_masks_one_threshold_exact_total():
    torch.manual_seed(0)
    scores = {"a": torch.rand(10, 10), "b": torch.rand(20, 5) * 0.2, "c": torch.rand(3, 7)}
    masks = global_masks(scores, 0.6)
    total = sum(s.numel() for s in scores.values())
    removed = sum(int((~m).sum()) for m in masks.values())
    assert removed == round(0.6 * total)
    kept = torch.cat([scores[n][masks[n]] for n in scores])
    gone = torch.cat([scores[n][~masks[n]] for n in scores])
    assert gone.max() <= kept.min()
    assert mask_sparsity(masks)["b"] > mask_sparsity(masks)["a"]  # small weights pruned harder


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (3, 8), (1, 2), (4, 16)])
def test_nm_mask_matches_reference_loop(n, m):
    torch.manual_seed(n * 10 + m)
    scores = torch.rand(6, 4 * m)
    mask = nm_mask(scores, n, m)
    for r in range(scores.shape[0]):
        for g in range(0, scores.shape[1], m):
            group, kept = scores[r, g : g + m], mask[r, g : g + m]
            assert int(kept.sum()) == n
            top = sorted(range(m), key=lambda i: (-float(group[i]), i))[:n]
            assert sorted(top) == [i for i in range(m) if kept[i]]
    assert mask_sparsity({"w": mask})["w"] == pytest.approx(1 - n / m, abs=0)


def test_nm_ties_keep_earlier():
    assert nm_mask(torch.ones(1, 4), 2, 4).tolist() == [[True, True, False, False]]


@pytest.mark.parametrize("n,m", [(4, 4), (5, 4), (0, 4)])
def test_nm_bad_n(n, m):
    with pytest.raises(NlpressError, match="N:M"):
        nm_mask(torch.rand(2, 8), n, m)


def test_nm_needs_divisible_input():
    with pytest.raises(NlpressError, match="divisible"):
        nm_mask(torch.rand(2, 6), 2, 4)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_sparsity_out_of_range(bad):
    with pytest.raises(NlpressError, match=r"outside \[0, 1\)"):
        magnitude_mask(torch.rand(3, 3), bad)


def test_pruned_weights_stay_zero_after_optimizer_steps_when_masks_reapplied():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 6)
    masks = {"weight": magnitude_mask(importance(lin.weight), 0.5)}
    apply_masks(lin, masks)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    for _ in range(3):
        loss = lin(torch.randn(4, 8)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert (lin.weight[~masks["weight"]] != 0).any()  # the step moves them...
        apply_masks(lin, masks)  # ...and re-applying the masks puts them back to zero
        assert (lin.weight[~masks["weight"]] == 0).all()
    assert int((lin.weight == 0).sum()) == 24


def test_apply_masks_rejects_unknown_or_misshaped():
    lin = torch.nn.Linear(4, 2)
    with pytest.raises(NlpressError, match="not a parameter"):
        apply_masks(lin, {"nope": torch.ones(2, 4, dtype=torch.bool)})
    with pytest.raises(NlpressError, match="shape"):
        apply_masks(lin, {"weight": torch.ones(4, 2, dtype=torch.bool)})


def test_keep_masks_callback_for_training_loops():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    masks = {"0.weight": nm_mask(importance(model[0].weight), 2, 4)}
    on_step_end = keep_masks_callback(masks)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for step in range(4):
        opt.zero_grad()
        model(torch.randn(5, 8)).sum().backward()
        opt.step()
        on_step_end(model, step)
    assert ((model[0].weight != 0).reshape(-1, 4).sum(1) == 2).all()


def test_per_row_mask_exact_in_every_row():
    torch.manual_seed(3)
    scores = torch.rand(9, 20)
    mask = magnitude_mask(scores, 0.35, per_row=True)
    for r in range(9):
        assert int((~mask[r]).sum()) == 7
        assert scores[r][~mask[r]].max() <= scores[r][mask[r]].min()
