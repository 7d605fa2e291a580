"""GPTQ vs round-to-nearest layer error on SmolLM2: in-sample (calibration) and held-out (eval text).

Diagnostic for "GPTQ barely beats RTN in perplexity". For the linears of one block, it measures
GPTQ's own objective ``||W X - Q X||_F^2`` (Frantar et al. 2022, arXiv:2210.17323, eq. 1) for
RTN and for GPTQ (plain and act_order), on

* the calibration inputs the Hessian was built from (in-sample, what GPTQ minimises), and
* the inputs of the first evaluated WikiText-2 tokens (held-out, what perplexity sees),

and checks the glue on the way: the engine's Hessian against ``2 X^T X / n`` of the captured
inputs, and the stored int4 form (codes, scales, zeros) against the weight GPTQ returned. Inputs
of block ``--block`` come from the fp32 blocks before it. Calibration windows are drawn as in
``benchmarks/llm_weight_only.py`` (random 512-token windows after the evaluated tokens).

    PYTHONPATH=src .venv/bin/python benchmarks/gptq_layer_error.py --block 0 --samples 16
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIKI = ROOT.parent / "shared" / "data" / "wikitext-2-raw" / "wiki.valid.raw"
LAYERS = ("self_attn.q_proj", "self_attn.o_proj", "mlp.up_proj", "mlp.down_proj")


def _inputs(block, inputs, names):
    """Per linear name: (rows, in) inputs of each batch in ``inputs``, and the engine's stats."""
    import torch

    from nlpress.calib.sequential import _hook_stats

    lin = {n: block.get_submodule(n) for n in names}
    xs: dict[str, list] = {n: [] for n in names}

    def grab(n):
        return lambda _m, a, _o: xs[n].append(a[0].reshape(-1, a[0].shape[-1]).float())

    hs = [m.register_forward_hook(grab(n)) for n, m in lin.items()]
    stats, (handles, alias, next_step) = _hook_stats(lin, frozenset({"hessian"}))
    with torch.no_grad():
        for i, (h, kw) in enumerate(inputs):
            if i == len(inputs) - 1:  # the held-out batch must not enter the Hessian
                for x in handles:
                    x.remove()
            block(h, **kw)
            next_step()
    for x in hs:
        x.remove()
    return lin, xs, {n: stats[alias[n]] for n in names}


def main() -> None:
    import torch

    from nlpress.calib.adapters import find_blocks
    from nlpress.calib.sequential import _capture_first_block, _run_block
    from nlpress.models.builtin import smollm2_path
    from nlpress.models.loader import load_model
    from nlpress.quantize.gptq import gptq_quantize
    from nlpress.quantize.weight_only import (
        _to_stored,
        lm_calibration_batches,
        rtn_quantize,
        weight_spec,
    )

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--block", type=int, default=0)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--group", type=int, default=64)
    p.add_argument("--eval-tokens", type=int, default=4096)
    p.add_argument("--percdamp", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model(smollm2_path(), "causal-lm")
    text = WIKI.read_text(encoding="utf-8")
    ids = torch.as_tensor(lm.tokenizer(text, return_tensors="np")["input_ids"][0])
    cal = lm_calibration_batches(ids[args.eval_tokens :], args.samples, 512)
    ev = ids[: args.eval_tokens // 512 * 512].reshape(-1, 512)  # (windows, 512)
    held = [{"input_ids": ev, "attention_mask": torch.ones_like(ev)}]
    _, _, blocks = find_blocks(lm.model)
    inputs = _capture_first_block(lm.model, blocks, cal + held)
    with torch.no_grad():
        for b in range(args.block):
            inputs = [
                (o, kw) for o, (_, kw) in zip(_run_block(blocks[b], inputs), inputs, strict=True)
            ]
    lin, xs, stats = _inputs(blocks[args.block], inputs, LAYERS)
    spec = weight_spec(4, args.group, symmetric=False)
    print(f"SmolLM2 block {args.block}, int4 g{args.group} asym, {args.samples}x512 calibration")
    print(
        f"{'layer':18} {'H err':>8} {'stored':>8} | in-sample RTN/GPTQ  act_order | held-out RTN/GPTQ  act_order"
    )
    for n in LAYERS:
        x_cal, x_ev = torch.cat(xs[n][:-1]), xs[n][-1]  # (rows, in)
        h_ref = 2 * x_cal.t() @ x_cal / x_cal.shape[0]
        h = stats[n].hessian
        w = lin[n].weight.detach().float()
        g = gptq_quantize(w, h, spec, percdamp=args.percdamp)
        ga = gptq_quantize(w, h, spec, percdamp=args.percdamp, act_order=True).weight
        st = _to_stored(g.weight.float(), g.scale, g.zero_point, spec, w.shape[1])
        r = rtn_quantize(w, spec)[0]

        def ratio(x, q, r=r, w=w):
            return float(((w - r) @ x.t()).square().sum() / ((w - q) @ x.t()).square().sum())

        print(
            f"{n:18} {float((h - h_ref).norm() / h_ref.norm()):8.1e} "
            f"{float((st.dequantize() - g.weight).abs().max()):8.1e} | "
            f"{ratio(x_cal, g.weight):16.2f}x {ratio(x_cal, ga):9.2f}x | "
            f"{ratio(x_ev, g.weight):16.2f}x {ratio(x_ev, ga):9.2f}x"
        )


if __name__ == "__main__":
    main()
