"""``bench()``: the API behind ``nlpress bench``; one model, or two in one interleaved run."""

from __future__ import annotations

import os


def bench(
    model: str | os.PathLike,
    *,
    vs: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    task: str | None = None,
    cfg=None,
    threads: int = 0,
    memory: bool = True,
    limit: int | None = 2000,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    device: str | None = None,
) -> dict:
    """``device``: where both models run (None: each artifact's own device, else the CPU)."""
    from nlpress.bench.harness import BenchConfig, benchmark, ratios
    from nlpress.evaluate.api import bench_texts, load_eval_data
    from nlpress.runtime import load

    cfg = cfg or BenchConfig()
    spin = vs is None  # two models share the cores: idle ORT threads must not busy-wait
    preds = {
        "model": load(model, threads=threads, task=task, spin=spin, verify=True, device=device)
    }
    if vs is not None:
        t = preds["model"].task
        preds["vs"] = load(vs, threads=threads, task=t, spin=spin, verify=True, device=device)
    t = preds["model"].task
    columns = {
        "text_column": text_column,
        "text_pair_column": text_pair_column,
        "label_column": label_column,
    }
    d = load_eval_data(t, data, limit, columns)
    texts = bench_texts(t, d)
    res = benchmark(preds, list(texts), cfg)
    for key, p in preds.items():
        res[key]["name"] = p.name
        res[key]["path"] = str(model if key == "model" else vs)
    if memory and all(p.device == "cpu" for p in preds.values()):  # the probe measures CPU RSS
        from nlpress.bench.memory import peak_memory_mb

        for key in preds:
            seq = int(res[key]["seq_len"])
            first = [x if isinstance(x, str) else x[0] for x in list(texts)[: cfg.batch_size]]
            m = peak_memory_mb(res[key]["path"], cfg.batch_size, seq, first)
            res[key].update(peak_memory_mb=m["model_peak_mb"], peak_rss_mb=m["peak_rss_mb"])
    out = {
        "task": t,
        "results": res,
        "bench": {
            "rounds": cfg.rounds,
            "batch_size": cfg.batch_size,
            "seq_len": cfg.seq_len or "data",
        },
    }
    if vs is not None:
        out["ratios"] = ratios(res, "vs")["model"]
    if cfg.peak:
        from nlpress.bench.env import environment
        from nlpress.bench.peak import machine_peak

        out["peak"] = machine_peak(int(res["model"].get("threads") or 1))
        isa = environment().get("isa") or {}
        out["isa"] = ", ".join(k for k, v in isa.items() if v) or "none"
    return out


def format_bench(res: dict) -> str:
    from nlpress.report.tables import peak_text

    rows = [("", "size MB", "p50 ms", "p95 ms", "seq/s", "GEMM GOP/s (of peak)", "peak MB")]
    for key, r in res["results"].items():
        rows.append(
            (
                f"{key} ({r.get('name', '')})",
                f"{r['size_bytes'] / 1e6:.1f}",
                f"{r['latency_p50_ms']:.1f}",
                f"{r['latency_p95_ms']:.1f}",
                f"{r['throughput']:.1f}",
                peak_text(r),
                f"{r['peak_memory_mb']:.0f}" if "peak_memory_mb" in r else "n/a",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    peak = res.get("peak")
    if peak:
        lines.append(
            f"machine peak at {peak['threads']} threads: fp32 {peak['fp32_gops']:.0f} GOP/s, "
            f"int8 {peak['int8_gops']:.0f} GOP/s; int8 kernel: {peak['int8_kernel']}; "
            f"CPU: {peak.get('cpu_model') or 'unknown'}, ISA: {res.get('isa', 'unknown')}"
        )
    if "ratios" in res:
        lines.append(
            "model vs --vs: " + ", ".join(f"{k} {v:.2f}" for k, v in res["ratios"].items())
        )
    return "\n".join(lines)
