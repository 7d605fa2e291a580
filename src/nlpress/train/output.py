"""Write a trained model as an nlpress artifact: a normal Hugging Face folder plus provenance.

The folder is what ``from_pretrained`` reads (so ``nlpress compress --model DIR`` can quantize a
distilled student), with the tokenizer, the sentence-transformers pooling files of the teacher
(so pooling and normalisation carry over), ``nlpress.json`` (so ``nlpress.load``, ``eval`` and
``bench`` run it in PyTorch), ``metrics.json`` (training curves, held-out history, timing,
teacher-vs-student quality and speed), ``env.json`` and a short report with the training curves.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from nlpress.artifact import FORMAT_VERSION, META, write_json
from nlpress.errors import NlpressError

log = logging.getLogger(__name__)

ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


def checkpoint_dir(out: Path) -> Path:
    """Checkpoints live beside the artifact, so a resumed run finds them from the same --out."""
    return out.parent / f"{out.name}.checkpoints"


def finish(kind: str, out: Path, force: bool, model: tuple, head: dict, result, compare=None):
    """The shared end of ``finetune`` and ``distill``: write the artifact, drop the checkpoints.

    ``model`` is ``(module, tokenizer, task, source folder)``; ``head`` the run's own metrics
    (model, task, data, configs); ``compare`` the arguments of
    :func:`nlpress.train.distill.compare_to_teacher` (quality and speed against the teacher).
    """
    from nlpress.artifact import Artifact, atomic_artifact
    from nlpress.bench.env import environment

    module, tokenizer, task, source = model
    module.eval()
    check_finite(module)
    metrics = {
        "kind": kind,
        **head,
        "steps": result.steps,
        "train_seconds": result.seconds,
        "num_processes": result.num_processes,
        "stopped_early": result.stopped_early,
        "best": result.best,
        "history": result.history,
        "evals": result.evals,
    }
    with atomic_artifact(out, force) as tmp:
        save_model_folder(tmp, module, tokenizer, task, Path(source), kind)
        if compare is not None:
            from nlpress.train.distill import compare_to_teacher

            t0 = time.perf_counter()
            metrics["comparison"] = compare_to_teacher(tmp, *compare)
            metrics["compare_seconds"] = round(time.perf_counter() - t0, 1)
        env = environment()
        write_json(tmp / "env.json", env)
        write_json(tmp / "metrics.json", {**metrics, "env": env})
        write_report(tmp, metrics)
        from nlpress.hub import prepare_for_hub

        prepare_for_hub(tmp, Path(source), out.name)
    # the artifact is written: its resumable checkpoints (optimizer state included) can go, if
    # nlpress made the folder (a folder of the same name that someone else made is never removed)
    from nlpress.train.loop import made_by_nlpress

    if made_by_nlpress(checkpoint_dir(out)):
        shutil.rmtree(checkpoint_dir(out), ignore_errors=True)
    return Artifact(out, metrics)


def check_finite(module) -> None:
    """Trained weights with NaN or inf in them are an error, not an artifact."""
    import torch

    for name, p in module.state_dict().items():
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            raise NlpressError(
                f"training left non-finite values (NaN/inf) in {name}; nothing was written. "
                "Lower --lr or check the data"
            )


def check_targets(out: Path, force: bool) -> None:
    """The artifact folder and its checkpoint folder may be written, checked before any work."""
    from nlpress.artifact import check_target
    from nlpress.train.loop import check_checkpoint_dir

    check_target(out, force)
    check_checkpoint_dir(checkpoint_dir(out))


def save_model_folder(tmp: Path, model, tokenizer, task: str, source: Path, recipe: str) -> dict:
    """Weights (safetensors), tokenizer, pooling files and ``nlpress.json``; returns the meta."""
    from nlpress.models.loader import sentence_transformers_pooling
    from nlpress.models.task_module import model_input_names
    from nlpress.runtime.predictor import _max_len

    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    pooling, normalize = "mean", False
    if task == "sentence-embedding":
        for name in ST_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, tmp / name)
        for sub in source.iterdir():  # 1_Pooling/, 2_Normalize/: small config folders
            if sub.is_dir() and sub.name[:1].isdigit() and "_" in sub.name:
                shutil.copytree(sub, tmp / sub.name)
        pooling, normalize = sentence_transformers_pooling(source)
    id2label = {int(k): str(v) for k, v in (getattr(model.config, "id2label", None) or {}).items()}
    meta = {
        "format_version": FORMAT_VERSION,
        "task": task,
        "source_model": str(source),
        "input_names": model_input_names(model, tokenizer),
        "pooling": pooling,
        "normalize": normalize,
        "id2label": id2label if task == "text-classification" else {},
        "max_length": _max_len(model.config, tokenizer),
        "recipe": recipe,
        "backend": "pytorch",
        "model_file": "model.safetensors",
        "weights_format": "hf",
        "name": f"pytorch-{recipe}",
    }
    write_json(tmp / META, meta)
    return meta


def plot_curves(metrics: dict, path: Path) -> Path | None:
    """Training loss per step, and the held-out metric per evaluation, one PNG."""
    hist, evals = metrics.get("history") or [], metrics.get("evals") or []
    if not hist:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2 if evals else 1, figsize=(10 if evals else 5.5, 3.6), squeeze=False)
    ax[0][0].plot([h["step"] for h in hist], [h["loss"] for h in hist], lw=1)
    ax[0][0].set(xlabel="optimizer step", ylabel="training loss", title="training loss")
    if evals:
        key = metrics["heldout_metric"]
        ax[0][1].plot([e["step"] for e in evals], [e[key] for e in evals], marker="o")
        ax[0][1].set(xlabel="optimizer step", ylabel=key, title=f"held-out {key}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _flat(row: dict) -> dict:
    """{"quality": {"accuracy": 90}} -> {"quality.accuracy": 90}: one table row per number."""
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def write_report(tmp: Path, metrics: dict) -> None:
    """``report.md`` and ``report.html``: summary, comparison table, training-curve plot."""
    img = plot_curves(metrics, tmp / "training_curves.png")
    lines = [f"# nlpress {metrics['kind']}: {metrics.get('model', '')}", ""]
    for k in ("task", "steps", "train_seconds", "stopped_early", "best"):
        lines.append(f"- {k}: {_fmt(metrics.get(k))}")
    split = (metrics.get("data") or {}).get("split")
    if split:
        lines.append(
            f"- held-out: {split['n_heldout']} of {split['n_train'] + split['n_heldout']} rows "
            f"(seed {split['seed']}, fraction {split['fraction']})"
        )
    evals = metrics.get("evals") or []
    if evals:
        keys = [k for k in evals[0] if k not in ("step", "epoch")]
        lines += ["", "| step | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        lines += [f"| {e['step']} | " + " | ".join(_fmt(e[k]) for k in keys) + " |" for e in evals]
    comp = {who: _flat(row) for who, row in (metrics.get("comparison") or {}).items()}
    if comp:
        lines += ["", "| | " + " | ".join(comp) + " |", "|---" * (len(comp) + 1) + "|"]
        keys = sorted({k for row in comp.values() for k in row})
        for k in keys:
            lines.append(f"| {k} | " + " | ".join(_fmt(comp[c].get(k, "")) for c in comp) + " |")
    if img is not None:
        lines += ["", f"![training curves]({img.name})"]
    md = "\n".join(lines) + "\n"
    (tmp / "report.md").write_text(md)
    import html

    text = html.escape("\n".join(ln for ln in lines if not ln.startswith("![")))
    body = f"<pre>{text}</pre>\n" + (f'<img src="{img.name}">\n' if img is not None else "")
    (tmp / "report.html").write_text(f"<!doctype html><meta charset='utf-8'><body>{body}</body>\n")
