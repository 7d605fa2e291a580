"""docs/recipes.md is generated from the step configs and must match them (STYLE.md: the
reference cannot drift from the code). Regenerate with `python -m nlpress.docgen`."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpress.docgen import main, render, why
from nlpress.step_configs import STEP_CONFIGS

DOC = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"


def test_docs_recipes_md_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == render(), "run `python -m nlpress.docgen`"


@pytest.mark.parametrize("step", list(STEP_CONFIGS))
def test_every_key_is_documented_with_why(step):
    cls = STEP_CONFIGS[step]
    text = render()
    section = text.split(f"### `{step}`\n", 1)[1].split("\n### ", 1)[0]
    for key in cls.model_fields:
        assert why(cls, key), f"{step}.{key} has no comment saying why (step_configs.py)"
        assert f"| `{key}` |" in section, (step, key)


def test_why_comes_from_the_comment_beside_the_field():
    from nlpress.step_configs import ExportOnnxConfig, PruneGradualConfig

    assert "LayerNormalization" in why(ExportOnnxConfig, "opset")  # trailing comment
    assert "named-input wrapper" in why(ExportOnnxConfig, "exporter")  # comment lines above
    assert "BERT's recommended" in why(PruneGradualConfig, "lr")  # declared on a shared base


def test_check_mode(tmp_path, capsys):
    out = tmp_path / "recipes.md"
    assert main(["--out", str(out), "--check"]) == 1  # missing
    assert main(["--out", str(out)]) == 0 and main(["--out", str(out), "--check"]) == 0
    out.write_text(out.read_text() + "hand edit\n")
    assert main(["--out", str(out), "--check"]) == 1
    assert "stale" in capsys.readouterr().err
