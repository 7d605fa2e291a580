"""Report files, their numbers, embedded images, n/a for missing keys, the terminal table."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from nlpress.errors import NlpressError
from nlpress.report import format_table, write_report
from nlpress.report.tables import fraction_change, speed_change

PNG = b"\x89PNG\r\n\x1a\n"

METRICS = {
    "version": 1,
    "task": "sentence-embedding",
    "model": "all-MiniLM-L6-v2 (default)",
    "recipe": "int8",
    "created": "2025-01-01T00:00:00",
    "data": {"source": "builtin", "n": 300},
    "bench": {"threads": 2, "rounds": 7, "batch_size": 32, "seq_len": "data"},
    "baseline": {
        "name": "pytorch-fp32",
        "backend": "pytorch",
        "size_bytes": 90868376,
        "latency_p50_ms": 71.0,
        "latency_p95_ms": 80.0,
        "throughput": 43.4,
        "throughput_spread": 0.05,
        "peak_memory_mb": 410.0,
        "quality": {"spearman": 82.1},
    },
    "result": {
        "name": "onnxruntime-int8",
        "backend": "onnxruntime",
        "size_bytes": 22717094,
        "latency_p50_ms": 23.5,
        "latency_p95_ms": 29.0,
        "throughput": 112.8,
        "throughput_spread": 0.08,
        "peak_memory_mb": 250.0,
        "quality": {"spearman": 81.7},
        "fidelity": {"cosine_mean": 0.992, "cosine_min": 0.97},
    },
    "ratios": {"throughput_speedup": 2.6, "latency_speedup": 3.02, "size_fraction": 0.25},
    "steps": [{"name": "export-onnx", "seconds": 3.2, "info": {"max_abs_diff": 2e-6}}],
    "extra_benchmarks": [
        {
            "seq_len": 128,
            "baseline": {"throughput": 20.1, "latency_p50_ms": 90.0},
            "result": {"throughput": 60.3, "latency_p50_ms": 30.0},
        }
    ],
    "env": {
        "python": "3.11.7",
        "onnxruntime": "1.32.0",
        "cpu_model": "Test CPU 9000",
        "isa": {"avx2": True, "amx": False},
    },
}
NUMBERS = [
    "90.9",
    "22.7",
    "71.0",
    "23.5",
    "80.0",
    "29.0",
    "43.4 ±5%",
    "112.8 ±8%",
    "410",
    "250",
    "82.1",
    "81.7",
    "0.992",
    "0.97",
    "2.60x faster",
    "3.02x faster",
    "0.25x",
    "export-onnx",
    "2e-06",
    "60.3",
    "Test CPU 9000",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("report")
    return out, write_report(out / "nested", METRICS)


def test_files_are_written(report: tuple[Path, list[Path]]) -> None:
    out, paths = report
    names = sorted(p.name for p in paths)
    assert names == [
        "report.html",
        "report.md",
        "size_and_throughput.png",
        "throughput_vs_fidelity.png",
    ]
    for p in paths:
        assert p.parent == out / "nested" and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes().startswith(PNG)


def test_html_is_self_contained_with_numbers(report: tuple[Path, list[Path]]) -> None:
    page = (report[0] / "nested" / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2
    assert not re.search(r"(src|href)=\"(?!data:)", page)  # nothing fetched from elsewhere
    assert "http://" not in page and "https://" not in page
    assert "<style>" in page and "all-MiniLM-L6-v2 (default)" in page
    for number in NUMBERS:
        assert number in page, number


def test_markdown_table_has_numbers(report: tuple[Path, list[Path]]) -> None:
    md = (report[0] / "nested" / "report.md").read_text()
    table = md.split("## Before and after")[1].split("##")[0]
    assert "| Size on disk (MB) | 90.9 | 22.7 | 0.25x (4.0x smaller) |" in table
    assert "| Throughput (seq/s) | 43.4 ±5% | 112.8 ±8% | 2.60x faster |" in table
    assert "| Quality: spearman | 82.1 | 81.7 | -0.4 |" in table
    for number in NUMBERS:
        assert number in md, number
    assert "](throughput_vs_fidelity.png)" in md


def test_missing_keys_render_as_na(tmp_path: Path) -> None:
    metrics = copy.deepcopy(METRICS)
    for key in ("ratios", "steps", "env", "extra_benchmarks", "created"):
        del metrics[key]
    del (
        metrics["baseline"]["peak_memory_mb"],
        metrics["result"]["fidelity"],
        metrics["result"]["quality"],
    )
    paths = write_report(tmp_path, metrics)
    assert [p.name for p in paths] == [
        "report.md",
        "report.html",
        "size_and_throughput.png",
    ]  # no fidelity: no scatter
    md = (tmp_path / "report.md").read_text()
    assert "| Peak memory (MiB) | n/a | 250 | n/a |" in md
    assert "| Quality: spearman | 82.1 | n/a | n/a |" in md
    assert "| Fidelity | ref | n/a |  |" in md
    assert "2.60x faster" in md  # ratios recomputed from the entries when not given
    assert "n/a" in (tmp_path / "report.html").read_text()


def test_empty_metrics_still_make_a_report(tmp_path: Path) -> None:
    paths = write_report(tmp_path, {})
    assert [p.name for p in paths] == ["report.md", "report.html"]
    assert "n/a" in paths[0].read_text()
    assert "n/a" in format_table({})
    with pytest.raises(NlpressError):
        write_report(tmp_path, [])  # type: ignore[arg-type]


def test_html_escapes_user_text(tmp_path: Path) -> None:
    write_report(tmp_path, {"model": "<script>alert(1)</script>", "steps": [{"name": "a&b"}]})
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page and "a&amp;b" in page


def test_format_table_fits_80_columns() -> None:
    text = format_table(METRICS)
    assert all(len(line) <= 80 for line in text.splitlines())
    for number in (
        "90.9",
        "22.7",
        "71.0",
        "23.5",
        "43.4 ±5%",
        "112.8 ±8%",
        "0.992",
        "2.60x faster",
        "3.02x faster",
        "0.25x",
    ):
        assert number in text, number
    long = copy.deepcopy(METRICS)
    long["baseline"]["name"] = "x" * 60
    long["result"]["fidelity"] = {"a_very_long_fidelity_metric_name_indeed": 0.5}
    assert all(len(line) <= 80 for line in format_table(long).splitlines())


@pytest.mark.parametrize(
    ("value", "text"), [(2.6, "2.60x faster"), (0.8, "1.25x slower"), (None, "n/a"), (0.0, "n/a")]
)
def test_speed_change(value: float | None, text: str) -> None:
    assert speed_change(value) == text


def test_fraction_change() -> None:
    assert fraction_change(0.25) == "0.25x (4.0x smaller)"
    assert fraction_change(1.5) == "1.50x larger"
    assert fraction_change(None) == "n/a"
