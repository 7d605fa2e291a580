"""The Pareto front of a study, the chosen model, and the honest re-measurement.

Two objectives: the quality drop (lower is better) and the speed objective (throughput or
latency speedup over the fp32 baseline, higher is better; or size in MB, lower is better). The
accuracy budget is a constraint: only trials within ``--max-drop`` on the search split are on the
front. The chosen model is the front's best on the speed objective.

Honest selection: the search split is what every trial was optimized on, so its numbers are
optimistic for the winner. The front and the chosen one are re-measured on the held-out split,
which no trial saw, with the baseline benchmarked in the same interleaved run; the final choice
is the fastest front member that also meets the budget there.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def better(objective: str, a: float, b: float) -> bool:
    return a < b if objective == "size" else a > b


def dominates(objective: str, a: dict, b: dict) -> bool:
    s = -1 if objective == "size" else 1
    ge = a["drop"] <= b["drop"] and s * a["value"] >= s * b["value"]
    gt = a["drop"] < b["drop"] or s * a["value"] > s * b["value"]
    return ge and gt


def pareto(rows: list[dict], objective: str) -> list[dict]:
    """Feasible, complete, non-duplicate rows that no other such row dominates; fastest first.
    Rows with equal (drop, value) keep the lowest trial number only."""
    ok = [r for r in rows if r["state"] == "complete" and r["feasible"] and not r["duplicate_of"]]
    front, seen = [], set()
    for r in sorted(ok, key=lambda r: r["number"]):
        key = (round(r["drop"], 9), round(r["value"], 9))
        if key in seen or any(dominates(objective, o, r) for o in ok):
            continue
        seen.add(key)
        front.append(r)
    sign = 1 if objective == "size" else -1
    return sorted(front, key=lambda r: (sign * r["value"], r["drop"], r["number"]))


def choose(front: list[dict]) -> dict | None:
    return front[0] if front else None


def heldout_measure(session, heldout, front: list[dict], out: Path, goal, base_q: dict) -> dict:
    """Quality on the held-out split and speed beside the baseline, one interleaved run."""
    from nlpress.bench.harness import benchmark, ratios
    from nlpress.evaluate.api import bench_texts
    from nlpress.evaluate.task_eval import quality
    from nlpress.runtime import load
    from nlpress.tune.trial import bench_config, drop_points

    preds, res = {}, {}
    for r in front:
        folder = out / "trials" / f"{r['number']:04d}" / "model"
        if folder.is_dir():
            preds[f"trial {r['number']}"] = load(folder, spin=False)
    if not preds:
        return {}
    for name, p in preds.items():
        q = quality(p, heldout)
        res[name] = {"quality": q, "drop": drop_points(goal.metric, base_q, q)}
    cfg = bench_config(goal.rounds)
    speed = benchmark(
        {"baseline": session.baseline, **preds}, bench_texts(session.task, heldout), cfg
    )
    rat = ratios(speed, "baseline")
    for name in preds:
        res[name].update(
            throughput=speed[name]["throughput"],
            latency_p50_ms=speed[name]["latency_p50_ms"],
            size_mb=speed[name]["size_bytes"] / 1e6,
            **rat[name],
        )
    res["baseline"] = {
        "quality": base_q,
        "throughput": speed["baseline"]["throughput"],
        "latency_p50_ms": speed["baseline"]["latency_p50_ms"],
        "size_mb": speed["baseline"]["size_bytes"] / 1e6,
    }
    return res


def final_choice(front: list[dict], held: dict, goal) -> tuple[dict | None, str]:
    """(chosen row, why): the fastest front member within the budget on the held-out split too."""
    from nlpress.tune.trial import objective_value

    if not front:
        return None, f"no trial met --max-drop {goal.max_drop} on the search split"
    if not held:
        return front[0], "fastest within the budget on the search split (no held-out split)"
    ranked = []
    for r in front:
        h = held.get(f"trial {r['number']}")
        if h is None:
            continue
        v = objective_value(goal, h, h["size_mb"])
        r["heldout"] = {**h, "value": v}
        ranked.append((r, v, h["drop"]))
    ok = [x for x in ranked if x[2] <= goal.max_drop]
    if not ok:
        return front[0], (
            f"no front member met --max-drop {goal.max_drop} on the held-out split; the search "
            f"split's fastest is kept, check its held-out drop"
        )
    sign = 1 if goal.objective == "size" else -1
    best = min(ok, key=lambda x: (sign * x[1], x[2], x[0]["number"]))
    why = (
        f"the {goal.objective} best of {len(ok)} front members within --max-drop "
        f"{goal.max_drop} on the held-out split (re-measured beside the baseline)"
    )
    return best[0], why
