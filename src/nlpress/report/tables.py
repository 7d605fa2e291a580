"""Turn a metrics dict into rows of display strings, and the plain-text terminal table.

Why one row builder: the Markdown report, the HTML report and the terminal table show the same
numbers, and must never disagree on rounding or on what "2.6x" means. Every renderer takes
:class:`Row` lists from here and only adds markup. Anything missing from the metrics (a model
without a quality score, a run without memory measurement) renders as ``n/a`` instead of failing:
a partial report is more useful than a traceback at the end of a long compression run.

Conventions: size on disk in MB (10**6 bytes, as model hubs show), memory in MiB (as ``top``
shows), speed changes as "2.60x faster" / "1.25x slower", size and memory as a fraction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

NA = "n/a"
# Fidelity keys that are 1.0 for a perfect copy, in order of preference for the headline number.
FIDELITY_HEADLINE = ("cosine_mean", "top1_agreement", "cosine_min")


class Row(NamedTuple):
    label: str
    before: str
    after: str
    change: str


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None if it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def fmt(value: Any, spec: str = ".1f") -> str:
    """Format a number with ``spec``; anything that is not a finite number becomes n/a."""
    v = number(value)
    return NA if v is None else format(v, spec)


def ratio(num: Any, den: Any) -> float | None:
    n, d = number(num), number(den)
    if n is None or d is None or d == 0:
        return None
    return n / d


def speed_change(speedup: float | None) -> str:
    """2.6 -> "2.60x faster", 0.8 -> "1.25x slower"."""
    if speedup is None or speedup <= 0:
        return NA
    if speedup >= 1:
        return f"{speedup:.2f}x faster"
    return f"{1 / speedup:.2f}x slower"


def fraction_change(fraction: float | None) -> str:
    """0.25 -> "0.25x (4.0x smaller)"."""
    if fraction is None or fraction <= 0:
        return NA
    if fraction <= 1:
        return f"{fraction:.2f}x ({1 / fraction:.1f}x smaller)"
    return f"{fraction:.2f}x larger"


def delta(before: Any, after: Any) -> str:
    b, a = number(before), number(after)
    return NA if a is None or b is None else f"{a - b:+.4g}"


def throughput_text(entry: Mapping[str, Any]) -> str:
    """ "43.4 ±5%" with the IQR spread, or just the number when no spread was recorded."""
    text = fmt(entry.get("throughput"))
    spread = number(entry.get("throughput_spread"))
    if text != NA and spread is not None:
        text += f" ±{spread * 100:.0f}%"
    return text


def peak_text(entry: Mapping[str, Any]) -> str:
    """``"41.2 (3.8% of int8)"``: GOP/s of the throughput run, fraction of the machine's peak."""
    gops, frac = number(entry.get("gops")), number(entry.get("peak_fraction"))
    if gops is None:
        return NA
    peak_of = "int8" if entry.get("gemm_format") == "int8" else "fp32"
    return f"{gops:.1f}" + (f" ({100 * frac:.1f}% of {peak_of})" if frac is not None else "")


def _section(metrics: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = metrics.get(key)
    return value if isinstance(value, Mapping) else {}


def _ratio_or(metrics: Mapping[str, Any], key: str, fallback: float | None) -> float | None:
    given = number(_section(metrics, "ratios").get(key))
    return given if given is not None else fallback


def headline_fidelity(result: Mapping[str, Any]) -> tuple[str | None, float | None]:
    """The fidelity metric that is 1.0 for a perfect copy (name, value), or (None, None)."""
    fidelity = result.get("fidelity")
    if not isinstance(fidelity, Mapping):
        return None, None
    for key in FIDELITY_HEADLINE:
        if number(fidelity.get(key)) is not None:
            return key, number(fidelity[key])
    return None, None


def _size_mb(entry: Mapping[str, Any]) -> float | None:
    size = number(entry.get("size_bytes"))
    return None if size is None else size / 1e6


def lm_speed_rows(b: Mapping[str, Any], r: Mapping[str, Any]) -> list[Row]:
    """Causal LMs: prefill and decode tokens/s at batch 1 (KV cache), when measured."""
    rows = []
    for key, label in (
        ("prefill_tokens_per_s", "Prefill, batch 1 (tokens/s)"),
        ("decode_tokens_per_s", "Decode, batch 1 (tokens/s)"),
    ):
        if b.get(key) is not None and r.get(key) is not None:
            rows.append(Row(label, fmt(b[key]), fmt(r[key]), speed_change(ratio(r[key], b[key]))))
    return rows


def core_rows(metrics: Mapping[str, Any], *, full: bool = True) -> list[Row]:
    """Size, latency, throughput (and, when ``full``, p95 latency and peak memory) rows."""
    b, r = _section(metrics, "baseline"), _section(metrics, "result")
    size_frac = _ratio_or(metrics, "size_fraction", ratio(r.get("size_bytes"), b.get("size_bytes")))
    lat = _ratio_or(
        metrics, "latency_speedup", ratio(b.get("latency_p50_ms"), r.get("latency_p50_ms"))
    )
    tput = _ratio_or(metrics, "throughput_speedup", ratio(r.get("throughput"), b.get("throughput")))
    rows = [
        Row("Size on disk (MB)", fmt(_size_mb(b)), fmt(_size_mb(r)), fraction_change(size_frac)),
        Row(
            "Latency p50 (ms)",
            fmt(b.get("latency_p50_ms")),
            fmt(r.get("latency_p50_ms")),
            speed_change(lat),
        ),
    ]
    if full:
        p95 = ratio(b.get("latency_p95_ms"), r.get("latency_p95_ms"))
        rows.append(
            Row(
                "Latency p95 (ms)",
                fmt(b.get("latency_p95_ms")),
                fmt(r.get("latency_p95_ms")),
                speed_change(p95),
            )
        )
    rows.append(
        Row("Throughput (seq/s)", throughput_text(b), throughput_text(r), speed_change(tput))
    )
    if full and (b.get("gops") or r.get("gops")):
        rows.append(
            Row(
                "GEMM GOP/s (of peak)",
                peak_text(b),
                peak_text(r),
                speed_change(ratio(r.get("gops"), b.get("gops"))),
            )
        )
    rows += lm_speed_rows(b, r)
    if full:
        mem = ratio(r.get("peak_memory_mb"), b.get("peak_memory_mb"))
        rows.append(
            Row(
                "Peak memory (MiB)",
                fmt(b.get("peak_memory_mb"), ".0f"),
                fmt(r.get("peak_memory_mb"), ".0f"),
                fraction_change(mem),
            )
        )
    return rows


def _keys(*dicts: Any) -> list[str]:
    keys: list[str] = []
    for d in dicts:
        if isinstance(d, Mapping):
            keys += [k for k in d if k not in keys]
    return keys


def quality_rows(metrics: Mapping[str, Any]) -> list[Row]:
    """One row per quality metric found in baseline or result; change is result - baseline."""
    bq = _section(metrics, "baseline").get("quality")
    rq = _section(metrics, "result").get("quality")
    keys = _keys(bq, rq)
    if not keys:
        return [Row("Quality", NA, NA, NA)]
    bq = bq if isinstance(bq, Mapping) else {}
    rq = rq if isinstance(rq, Mapping) else {}
    return [
        Row(
            f"Quality: {k}",
            fmt(bq.get(k), ".4g"),
            fmt(rq.get(k), ".4g"),
            delta(bq.get(k), rq.get(k)),
        )
        for k in keys
    ]


def fidelity_rows(metrics: Mapping[str, Any]) -> list[Row]:
    """One row per fidelity metric of the result; the baseline is the reference it is measured to."""
    fidelity = _section(metrics, "result").get("fidelity")
    if not isinstance(fidelity, Mapping) or not fidelity:
        return [Row("Fidelity", "ref", NA, "")]
    return [Row(f"Fidelity: {k}", "ref", fmt(v, ".4g"), "") for k, v in fidelity.items()]


def comparison_rows(metrics: Mapping[str, Any]) -> list[Row]:
    """The full before/after table of the report."""
    return core_rows(metrics) + quality_rows(metrics) + fidelity_rows(metrics)


def _info_text(info: Any) -> str:
    if not isinstance(info, Mapping):
        return "" if info is None else str(info)
    parts = []
    for k, v in info.items():
        parts.append(f"{k}={fmt(v, '.3g') if number(v) is not None else v}")
    return ", ".join(parts)


def steps_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(step, seconds, info) for each pipeline step."""
    steps = metrics.get("steps")
    if not isinstance(steps, list):
        return []
    return [
        (str(s.get("name", NA)), fmt(s.get("seconds")), _info_text(s.get("info")))
        for s in steps
        if isinstance(s, Mapping)
    ]


def _env_value(value: Any) -> str:
    if value is None:
        return NA
    if isinstance(value, Mapping) and all(isinstance(v, bool) for v in value.values()):
        return (
            ", ".join(k for k, v in value.items() if v) or "none"
        )  # ISA flags: list those present
    return str(value)


def env_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, value) for the environment, nested dicts flattened to dotted names."""
    env = metrics.get("env")
    if not isinstance(env, Mapping):
        return []
    rows: list[tuple[str, str]] = []
    for key, value in env.items():
        if isinstance(value, Mapping) and not all(isinstance(v, bool) for v in value.values()):
            rows += [(f"{key}.{k}", _env_value(v)) for k, v in value.items()]
        else:
            rows.append((str(key), _env_value(value)))
    return rows


EXTRA_HEADER = (
    "seq_len",
    "before seq/s",
    "after seq/s",
    "throughput",
    "before p50 ms",
    "after p50 ms",
    "latency",
)


def extra_rows(metrics: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """The same comparison at other sequence lengths, one row per length."""
    extra = metrics.get("extra_benchmarks")
    if not isinstance(extra, list):
        return []
    rows = []
    for item in extra:
        if not isinstance(item, Mapping):
            continue
        b, r = _section(item, "baseline"), _section(item, "result")
        rows.append(
            (
                str(item.get("seq_len", NA)),
                throughput_text(b),
                throughput_text(r),
                speed_change(ratio(r.get("throughput"), b.get("throughput"))),
                fmt(b.get("latency_p50_ms")),
                fmt(r.get("latency_p50_ms")),
                speed_change(ratio(b.get("latency_p50_ms"), r.get("latency_p50_ms"))),
            )
        )
    return rows


def title(metrics: Mapping[str, Any]) -> str:
    model = metrics.get("model") or NA
    return f"{model}: {metrics.get('recipe') or NA} ({metrics.get('task') or NA})"


def names(metrics: Mapping[str, Any]) -> tuple[str, str]:
    """Column headers: the baseline's and the result's predictor names."""
    b, r = _section(metrics, "baseline"), _section(metrics, "result")
    return f"before: {b.get('name') or 'baseline'}", f"after: {r.get('name') or 'result'}"


def settings_text(metrics: Mapping[str, Any]) -> str:
    """One line on how it was measured: data, threads, rounds, batch, seq_len."""
    data, bench = _section(metrics, "data"), _section(metrics, "bench")
    return (
        f"data {data.get('source') or NA} (n={data.get('n') if data.get('n') is not None else NA}); "
        f"threads {bench.get('threads') or NA}, rounds {bench.get('rounds') or NA}, "
        f"batch {bench.get('batch_size') or NA}, seq_len {bench.get('seq_len') or NA}"
    )


def format_table(metrics: Mapping[str, Any]) -> str:
    """A short before/after table for the terminal (fits 80 columns)."""
    before, after = names(metrics)
    rows = core_rows(metrics, full=False) + fidelity_rows(metrics)
    rows = [Row(r.label.removeprefix("Fidelity: "), r.before, r.after, r.change) for r in rows]
    header = Row("", before.removeprefix("before: "), after.removeprefix("after: "), "change")
    widths = [max(len(getattr(row, f)) for row in [header, *rows]) for f in Row._fields]
    widths = [min(w, cap) for w, cap in zip(widths, (20, 16, 16, 22), strict=True)]

    def line(row: Row) -> str:
        cells = [c if len(c) <= w else c[: w - 1] + "~" for c, w in zip(row, widths, strict=True)]
        return "  ".join(
            (c.ljust(w) if i in (0, 3) else c.rjust(w))
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "-" * len(line(Row(*("x" * w for w in widths))))
    return "\n".join([title(metrics), rule, line(header), rule, *map(line, rows), rule])
