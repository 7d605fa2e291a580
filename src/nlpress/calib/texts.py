"""Calibration texts of a recipe: read from ``--calib`` (or the evaluation data) and checked
before any slow work. Shared by the session and the calibrated steps."""

from __future__ import annotations

from pathlib import Path

from nlpress.errors import NlpressError
from nlpress.recipe import PruneStructuredConfig, QuantizeStaticInt8Config, Recipe


def calibration_texts(
    rcp: Recipe, task: str, calib, columns: dict, bench_texts: list
) -> tuple[list, str]:
    """(calibration texts, their source) for a recipe with a static step; checked before work."""
    from nlpress.calib.pipeline_steps import lm_calibration_texts, needs_lm_calib
    from nlpress.quantize.static import check_calibration_texts

    wanted = max(
        (
            s.num_samples
            for s in rcp.steps
            if isinstance(s, QuantizeStaticInt8Config)
            or (isinstance(s, PruneStructuredConfig) and s.score == "activation")
        ),
        default=0,
    )
    from nlpress.quantize.openvino import calib_samples_wanted

    wanted = max(wanted, calib_samples_wanted(rcp.steps))
    if not wanted and needs_lm_calib(rcp):
        return lm_calibration_texts(rcp, task, calib, columns, bench_texts)
    if not wanted:
        if calib is not None:
            raise NlpressError(
                "--calib is used by quantize-static-int8, quantize-openvino-int8, "
                "select-backend, GPTQ/AWQ/SmoothQuant and "
                f"activation-scored pruning only; recipe {rcp.name!r} has none "
                "(try --recipe int8-static or int4-gptq)"
            )
        return [], ""
    if calib is None:
        texts, source = bench_texts, "evaluation data (no --calib given)"
    else:
        texts, source = read_calib(calib, task, columns, wanted), str(calib)
    check_calibration_texts(texts, source)
    return texts[:wanted], source


def read_calib(calib, task: str, columns: dict, limit: int) -> list:
    from nlpress.data.readers import read_data, read_text

    if not Path(calib).is_file():
        raise NlpressError(f"calibration file not found: {calib}; check the path")
    try:
        if task == "causal-lm":
            return [ln for ln in read_text(calib).splitlines() if ln.strip()][:limit]
        td = read_data(calib, limit=limit, **columns)
    except NlpressError as e:
        raise NlpressError(f"calibration file {calib}: {e}") from e
    return list(td.texts if task == "sentence-embedding" else td.inputs())
