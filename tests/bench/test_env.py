"""Environment record: versions, CPU and threads, and nothing personal."""

from __future__ import annotations

import getpass
import json
import socket

import numpy as np

from nlpress.bench.env import ISA_FLAGS, environment, isa_flags


def test_environment_has_versions_cpu_and_threads() -> None:
    env = environment()
    for key in (
        "python",
        "torch",
        "transformers",
        "onnxruntime",
        "onnx",
        "numpy",
        "cpu_model",
        "cpu_count",
        "isa",
        "torch_threads",
        "OMP_NUM_THREADS",
    ):
        assert key in env
    assert env["numpy"] == np.__version__
    assert env["cpu_count"] >= 1
    json.dumps(env)  # goes into artifacts as JSON


def test_environment_is_free_of_personal_data() -> None:
    text = json.dumps(environment())
    hostname = socket.gethostname()
    if len(hostname) > 3:
        assert hostname not in text
    user = getpass.getuser()
    if len(user) > 3:
        assert f'"{user}"' not in text and f"/{user}" not in text


def test_isa_flags_parse() -> None:
    flags = isa_flags("fpu sse avx2 avx512f avx512_vnni amx_tile amx_int8")
    assert flags == {
        "avx2": True,
        "avx512f": True,
        "avx512_vnni": True,
        "avx_vnni": False,
        "avx512_bf16": False,
        "amx": True,
    }
    assert set(isa_flags("")) == set(ISA_FLAGS) and not any(isa_flags("").values())
