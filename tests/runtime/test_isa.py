"""int8 GEMMs are exact on every CPU under nlpress's session settings (nlpress.runtime.isa)."""

import numpy as np
import pytest

from nlpress.runtime import isa


def _matmul_integer_session(a_shape, w: np.ndarray, exact: bool):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w"], ["y"])],
        "mmi",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, list(a_shape))],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    isa.configure_int8_session(so, exact=exact)
    return ort.InferenceSession(
        onnx.to_bytes(model) if hasattr(onnx, "to_bytes") else model.SerializeToString(),
        so,
        providers=["CPUExecutionProvider"],
    )


def test_int8_matmul_is_exact_against_int64_reference():
    # Worst case for vpmaddubsw: large uint8 activations times large int8 weights of one sign,
    # so every int16 pair sum (up to 2 * 255 * 127 = 64,770) would saturate without VNNI.
    rng = np.random.default_rng(0)
    a = rng.integers(200, 256, size=(16, 256), dtype=np.uint8)
    w = rng.integers(100, 128, size=(256, 32), dtype=np.int8)
    w[:, ::2] *= -1
    ref = a.astype(np.int64) @ w.astype(np.int64)
    got = _matmul_integer_session(a.shape, w, exact=True).run(None, {"a": a})[0]
    np.testing.assert_array_equal(got.astype(np.int64), ref)


def test_saturation_is_real_where_the_cpu_lacks_vnni():
    # Documents the defect the exact mode fixes: ORT's default U8S8 path loses the pair sums on
    # an x86 CPU without VNNI, and is exact on one with it.
    rng = np.random.default_rng(1)
    a = rng.integers(200, 256, size=(16, 256), dtype=np.uint8)
    w = rng.integers(100, 128, size=(256, 32), dtype=np.int8)
    ref = a.astype(np.int64) @ w.astype(np.int64)
    got = _matmul_integer_session(a.shape, w, exact=False).run(None, {"a": a})[0]
    if isa.u8s8_saturates() and isa.is_x86():
        assert np.abs(got.astype(np.int64) - ref).max() > 1000
    else:
        np.testing.assert_array_equal(got.astype(np.int64), ref)


@pytest.mark.parametrize(
    ("flags", "saturates"),
    [
        ({"avx2", "fma"}, True),  # AMD Zen 3, Intel Haswell..Coffee Lake
        ({"avx2", "avx512f", "avx512bw"}, True),  # Skylake-SP: AVX-512 without VNNI
        ({"avx2", "avx512f", "avx512_vnni"}, False),  # Zen 4/5, Cascade Lake and later
        ({"avx2", "avx_vnni"}, False),  # Alder Lake client cores
        ({"avx2", "amx_int8", "amx_tile", "avx512_vnni"}, False),  # Sapphire Rapids
        (set(), True),  # unknown: the exact path costs speed, never accuracy
    ],
)
def test_u8s8_saturation_by_isa(flags, saturates):
    assert isa.u8s8_saturates(frozenset(flags)) is saturates


def test_int8_kernel_names_the_path():
    assert isa.int8_kernel(frozenset({"avx2"})).startswith("u8u8-exact")
    assert isa.int8_kernel(frozenset({"avx512_vnni"})) == "avx512-vnni"


def test_portability_warning_only_where_the_int8_path_changes(monkeypatch):
    if not isa.is_x86():
        pytest.skip("the VNNI question only exists on x86")
    vnni = {"built_on": {"vnni": True, "int8_kernel": "avx512-vnni"}}
    plain = {"built_on": {"vnni": False, "int8_kernel": "u8u8-exact"}}
    monkeypatch.setattr(isa, "u8s8_saturates", lambda flags=None: True)  # an AVX2-only CPU
    assert "exact U8U8" in isa.check_int8_portability(vnni, has_int8=True)
    assert isa.check_int8_portability(plain, has_int8=True) is None
    assert isa.check_int8_portability(vnni, has_int8=False) is None  # fp32 graphs: no change
    assert isa.check_int8_portability({}, has_int8=True) is None  # older artifacts
    monkeypatch.setattr(isa, "u8s8_saturates", lambda flags=None: False)  # a VNNI CPU
    assert "faster" in isa.check_int8_portability(plain, has_int8=True)
    assert isa.check_int8_portability(vnni, has_int8=True) is None


def test_artifact_records_the_cpu_it_was_built_on(tiny_bert, tmp_path):
    import nlpress
    from nlpress.artifact import read_meta
    from nlpress.bench.harness import BenchConfig

    out = tmp_path / "a"
    cfg = BenchConfig(rounds=1, latency_samples=1, throughput_batches=1, progress=False)
    nlpress.compress(tiny_bert, recipe="int8", out=out, bench=cfg, memory=False, progress=False)
    built = read_meta(out)["built_on"]
    assert built["int8_kernel"] == isa.int8_kernel()
    assert built["vnni"] is (not isa.u8s8_saturates() if isa.is_x86() else None)
