"""OpenVINO as a second CPU runtime: the predictor, and the one place that imports OpenVINO.

Why a second runtime: ONNX Runtime and OpenVINO run the same model with different kernels
(MLAS vs oneDNN plus OpenVINO's own graph transformations), and which is faster depends on the
CPU: on an AVX2-only Zen 3 OpenVINO ran MiniLM fp32 at 52 sequences/s against ORT's 31, while
ORT's dynamic int8 beat OpenVINO's static int8 there (issue 13). nlpress therefore offers both and
lets ``select-backend`` (:mod:`nlpress.bench.select`) pick by measurement on the user's machine.

An OpenVINO artifact is ``model.xml`` + ``model.bin`` (OpenVINO IR); :class:`OpenVinoPredictor`
runs it on OpenVINO's CPU plugin behind the same ``tokenize``/``forward`` pair as every other
predictor, so the benchmark harness and the evaluator treat it like any other.

OpenVINO and NNCF are an optional extra (``pip install 'nlpress[openvino]'``): every import of
them goes through :func:`require_openvino` / :func:`require_nncf`, which turn a missing package
into one clear error line that names the extra.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import sys
from pathlib import Path

import numpy as np

from nlpress.errors import NlpressError
from nlpress.runtime.predictor import Predictor, _physical_cores

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'nlpress[openvino]'"
MODEL_FILE = "model.xml"  # its weights are model.bin beside it (OpenVINO IR)


def require_openvino(why: str = "this step"):
    """The ``openvino`` module, or an NlpressError that says how to install it."""
    try:
        import openvino
    except ImportError as e:
        raise NlpressError(f"{why} needs OpenVINO, which is not installed; {INSTALL_HINT}") from e
    return openvino


def installed() -> bool:
    """Whether OpenVINO and NNCF (the ``openvino`` extra) are installed, without importing them
    (``import openvino`` takes seconds; ``nlpress tune`` asks at start-up)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("openvino", "nncf"))


def require_nncf(why: str = "this step"):
    """The ``nncf`` module (OpenVINO's quantizer), or an NlpressError naming the extra."""
    require_openvino(why)
    try:
        import nncf
    except ImportError as e:
        raise NlpressError(
            f"{why} needs NNCF (OpenVINO's quantizer), which is not installed; {INSTALL_HINT}"
        ) from e
    return nncf


@contextlib.contextmanager
def quiet_nncf(progress: bool):
    """Keep NNCF's output off stdout (``--json`` prints one object there): its rich progress bars
    go to stderr when ``progress`` is on and nowhere otherwise, its INFO tables nowhere."""
    nncf_log = logging.getLogger("nncf")
    levels = [(h, h.level) for h in nncf_log.handlers]
    old = nncf_log.level
    nncf_log.setLevel(logging.WARNING)
    for h, _ in levels:
        h.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(sys.stderr if progress else io.StringIO()):
            yield
    finally:
        nncf_log.setLevel(old)
        for h, level in levels:
            h.setLevel(level)


@functools.cache
def shared_core():
    """One ``openvino.Core`` per process, as ONNX Runtime has one environment: every Core
    starts its own plugin and thread pools, and a process that held several (select-backend
    builds three candidates) crashed on a later SIGTERM."""
    return require_openvino("OpenVINO").Core()


def ir_files(xml: Path) -> list[Path]:
    return [Path(xml), Path(xml).with_suffix(".bin")]


def compile_config(threads: int, precision: str = "f32") -> dict[str, str]:
    """CPU plugin properties nlpress runs with.

    LATENCY: one stream using every thread, which is what a synchronous caller (the harness,
    ``predict``) gets the most from; THROUGHPUT would split the cores into streams that only
    pay off with many requests in flight. ``precision`` f32: OpenVINO picks bf16 on its own
    on CPUs with AMX, which changes the numbers; nlpress keeps the precision a recipe chose
    and records it in the artifact.
    """
    return {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": str(threads),
        "INFERENCE_PRECISION_HINT": precision,
    }


class OpenVinoPredictor(Predictor):
    backend = "openvino"

    def __init__(self, xml_path: Path, *, threads: int = 0, precision: str = "f32", **kw):
        require_openvino(f"the OpenVINO model {xml_path}")
        threads = threads or _physical_cores()
        core = shared_core()
        try:
            model = core.read_model(str(xml_path))
        except RuntimeError as e:
            raise NlpressError(
                f"cannot read the OpenVINO model {xml_path} ({str(e).splitlines()[0]}); "
                "the artifact is damaged or was written by a newer OpenVINO, rebuild it"
            ) from e
        self.profile = _profile(model, Path(xml_path).parent / "config.json")
        self.compiled = core.compile_model(model, "CPU", compile_config(threads, precision))
        self.request = self.compiled.create_infer_request()
        # what the plugin really runs: a bf16 hint falls back to f32 on CPUs without bf16
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        kw.setdefault("files", ir_files(Path(xml_path)))
        super().__init__(threads=threads, **kw)
        graph_inputs = {name for i in self.compiled.inputs for name in i.get_names()}
        self.input_names = [n for n in self.input_names if n in graph_inputs]

    def compute_profile(self) -> dict | None:
        """Multiply-adds per token and GEMM format (:mod:`nlpress.bench.peak`)."""
        return self.profile

    def forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        # share_outputs=False: the request reuses its output buffer on the next call
        res = self.request.infer({n: batch[n] for n in self.input_names}, share_outputs=False)
        return np.asarray(res[self.compiled.outputs[0]])


def _profile(model, config_file: Path) -> dict | None:
    """Weight GEMMs of an IR: MatMuls whose second input has a static 2-D shape (a weight,
    possibly behind NNCF's decompression); int8 where NNCF put FakeQuantize nodes."""

    from nlpress.bench.peak import _attention

    macs, fq = 0, False
    for op in model.get_ops():
        kind = op.get_type_name()
        fq = fq or kind == "FakeQuantize"
        if kind != "MatMul":
            continue
        shape = op.input(1).get_partial_shape()
        if shape.is_static and len(shape) == 2:
            macs += int(shape[0].get_length()) * int(shape[1].get_length())
    from nlpress.guards import read_json

    try:
        config = (
            read_json(config_file, "model config", "", kind=None) if config_file.is_file() else None
        )
    except NlpressError:  # a hint for the report only: a damaged config.json is found elsewhere
        config = None
    layers, width = _attention(config if isinstance(config, dict) else None)
    return {
        "linear_macs": macs,
        "attention_macs": layers * width,
        "format": "int8" if fq else "fp32",
    }


def warn_if_int8_saturates(meta: dict, path) -> bool:
    """Warn when an int8 artifact tuned with full 8-bit weights (for a VNNI CPU) is loaded on a
    CPU whose int8 pair sums saturate; True when it warned."""
    from nlpress.runtime.isa import u8s8_saturates

    if meta.get("overflow_fix") in ("disable", "first_layer") and u8s8_saturates():
        log.warning(
            "%s holds int8 weights tuned for a CPU with VNNI (overflow_fix %s); this CPU has none, "
            "so its int8 sums can saturate and lose accuracy: rebuild the artifact on this machine",
            path,
            meta["overflow_fix"],
        )
        return True
    return False


def openvino_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("openvino")
    except Exception:
        return None
