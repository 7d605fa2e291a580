"""Bad input: one ``error:`` line on stderr, exit code 2, and nothing written or overwritten."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest


@pytest.fixture()
def inputs(tmp_path, tiny_classifier, tiny_llama, sst_file, lm_text) -> SimpleNamespace:
    """The bad files each case needs, next to good ones."""
    d = tmp_path / "inputs"
    d.mkdir()
    (d / "not-a-model").mkdir()
    (d / "not-a-model" / "notes.txt").write_text("hello")
    corrupt = d / "corrupt-model"
    shutil.copytree(tiny_classifier, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (d / "empty.tsv").write_text("")
    (d / "empty.txt").write_text("\n\n")
    (d / "header-only.tsv").write_text("sentence\tlabel\n")
    recipes = {
        "unknown-step": "steps:\n  - export-onxx: {}\n",
        "unknown-key": "steps:\n  - export-onnx: {opset: 17, opsett: 18}\n",
        "out-of-range": "steps:\n  - export-onnx: {opset: 99}\n",
        "unknown-top-key": "name: x\nstep: []\n",
        "bad-order": "steps:\n  - ort-optimize: {}\n  - export-onnx: {}\n",
        "not-yaml": "steps: [unclosed\n",
    }
    for name, text in recipes.items():
        (d / f"{name}.yaml").write_text(text)
    return SimpleNamespace(dir=d, cls=tiny_classifier, llama=tiny_llama, sst=sst_file, txt=lm_text)


# Each case: the compress arguments (without --out/--force), filled from `inputs`, and a word
# the message must hold.
CASES = {
    "model-missing": ("--model {dir}/no-such-model --data {sst}", "does not exist"),
    "not-a-model": ("--model {dir}/not-a-model --data {sst}", "not a model folder"),
    "corrupt-weights": ("--model {dir}/corrupt-model --data {sst}", "corrupt"),
    "data-missing": ("--model {cls} --data {dir}/missing.tsv", "not found"),
    "data-empty": ("--model {cls} --data {dir}/empty.tsv", "empty"),
    "text-empty": ("--model {llama} --data {dir}/empty.txt", "empty"),
    "data-header-only": ("--model {cls} --data {dir}/header-only.tsv", "only a header"),
    "column-missing": ("--model {cls} --data {sst} --text-column nope", "nope"),
    "recipe-unknown-step": ("--model {cls} --recipe {dir}/unknown-step.yaml", "export-onxx"),
    "recipe-unknown-key": ("--model {cls} --recipe {dir}/unknown-key.yaml", "opsett"),
    "recipe-out-of-range": ("--model {cls} --recipe {dir}/out-of-range.yaml", "99"),
    "recipe-unknown-top-key": ("--model {cls} --recipe {dir}/unknown-top-key.yaml", "step"),
    "recipe-bad-order": ("--model {cls} --recipe {dir}/bad-order.yaml", "export-onnx"),
    "recipe-not-yaml": ("--model {cls} --recipe {dir}/not-yaml.yaml", "YAML"),
    "recipe-unknown-name": ("--model {cls} --recipe int9", "int9"),
    "bad-task": ("--model {cls} --task translation", "translation"),
    "rounds-zero": ("--model {cls} --rounds 0", "--rounds"),
    "limit-zero": ("--model {cls} --data {sst} --limit 0", "limit"),
    "threads-on-compress": ("--model {cls} --threads 2", "--threads"),
}


def case_args(case: str, inputs: SimpleNamespace) -> list[str]:
    return CASES[case][0].format(**vars(inputs)).split()  # pytest's tmp paths have no spaces


def assert_user_error(r, word: str | None = None) -> None:
    assert r.rc == 2, (r.rc, r.err)
    assert r.out == ""
    assert len(r.err_lines) == 1, r.err
    assert r.err_lines[0].startswith("error: "), r.err
    if word:
        assert word in r.err_lines[0], r.err


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_creates_nothing(case, inputs, tmp_path, cli, fast, leftovers):
    out = tmp_path / "new-out"
    r = cli("compress", "--out", out, *fast, *case_args(case, inputs))  # the case's flags win
    assert_user_error(r, CASES[case][1])
    assert not out.exists()
    assert not leftovers(out)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_keeps_earlier_artifact(case, inputs, earlier, cli, fast, snapshot, leftovers):
    """Even with --force, a run that fails leaves the earlier artifact byte for byte as it was."""
    before = snapshot(earlier)
    r = cli("compress", "--out", earlier, "--force", *fast, *case_args(case, inputs))
    assert_user_error(r, CASES[case][1])
    assert snapshot(earlier) == before
    assert not leftovers(earlier)


def test_existing_artifact_needs_force(
    earlier, tiny_bert, sts_file, cli, fast, snapshot, leftovers, check_artifact
):
    before = snapshot(earlier)
    r = cli("compress", "--model", tiny_bert, "--data", sts_file, "--out", earlier, *fast)
    assert_user_error(r, "--force")
    assert snapshot(earlier) == before

    r = cli(
        "compress", "--model", tiny_bert, "--data", sts_file, "--out", earlier, "--force", *fast
    )
    assert r.rc == 0, r.err
    after = snapshot(earlier)
    assert after["metrics.json"] != before["metrics.json"]
    check_artifact(earlier, "model.onnx")
    assert not leftovers(earlier)


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "force"])
def test_folder_that_is_not_an_artifact_is_never_replaced(
    force, tmp_path, tiny_bert, cli, fast, snapshot, leftovers
):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    before = snapshot(out)
    r = cli("compress", "--model", tiny_bert, "--out", out, *force, *fast)
    assert_user_error(r, "not an nlpress artifact")
    assert snapshot(out) == before
    assert not leftovers(out)


def test_empty_folder_is_a_fine_target(tmp_path, tiny_bert, cli, fast, check_artifact):
    out = tmp_path / "empty"
    out.mkdir()
    r = cli("compress", "--model", tiny_bert, "--out", out, "--limit", "8", *fast)
    assert r.rc == 0, r.err
    check_artifact(out, "model.onnx")


def test_output_that_is_a_file_or_under_a_missing_folder(tmp_path, tiny_bert, cli, fast):
    f = tmp_path / "file"
    f.write_text("x")
    assert_user_error(cli("compress", "--model", tiny_bert, "--out", f, *fast), "is a file")
    assert f.read_text() == "x"
    out = tmp_path / "missing" / "out"
    assert_user_error(cli("compress", "--model", tiny_bert, "--out", out, *fast), "does not exist")
    assert not out.parent.exists()


def test_usage_errors_are_one_line(cli):
    for args in (
        [],
        ["frobnicate"],
        ["compress", "--rounds", "many"],
        ["eval"],
        ["bench", "x", "--task", "translation"],
    ):
        assert_user_error(cli(*args))


def test_eval_and_bench_bad_inputs(earlier, tiny_classifier, sts_file, tmp_path, cli):
    missing = tmp_path / "no-such-model"
    assert_user_error(cli("eval", missing, "--data", sts_file), "does not exist")
    assert_user_error(cli("eval", earlier, "--data", tmp_path / "none.tsv"), "not found")
    assert_user_error(cli("eval", earlier, "--data", sts_file, "--vs", missing), "does not exist")
    assert_user_error(cli("bench", missing, "--no-memory"), "does not exist")
    assert_user_error(cli("bench", earlier, "--vs", missing, "--no-memory"), "does not exist")
    assert_user_error(cli("bench", earlier, "--threads", "-1", "--no-memory"), "--threads")
    assert_user_error(cli("bench", earlier, "--rounds", "0", "--no-memory"), "--rounds")
    # a reference artifact of another task: an error (its wording is reported as a bug)
    assert_user_error(cli("eval", tiny_classifier, "--data", sts_file, "--vs", earlier))
    damaged = tmp_path / "damaged"
    shutil.copytree(earlier, damaged)
    (damaged / "nlpress.json").write_text("{not json")
    assert_user_error(cli("eval", damaged, "--data", sts_file), "damaged")


def test_eval_task_that_contradicts_the_artifact(earlier, sts_file, cli):
    assert_user_error(
        cli("eval", earlier, "--data", sts_file, "--task", "text-classification"), "task"
    )


def test_data_is_checked_before_the_model_is_loaded(inputs, tmp_path, cli, fast):
    r = cli(
        "compress",
        "--model",
        inputs.dir / "corrupt-model",
        "--data",
        inputs.dir / "no.tsv",
        "--out",
        tmp_path / "o",
        *fast,
    )
    assert_user_error(r, "not found")


# Real exit codes, through `python -m nlpress.cli`: the cheap cases, and one that loads torch.
@pytest.mark.parametrize(
    "case", ["model-missing", "recipe-unknown-key", "bad-task", "corrupt-weights"]
)
def test_exit_code_in_a_subprocess(case, inputs, earlier, cli_subprocess, snapshot, leftovers):
    before = snapshot(earlier)
    args = case_args(case, inputs)
    r = cli_subprocess("compress", *args, "--out", earlier, "--force", "--no-memory")
    assert_user_error(r, CASES[case][1])
    assert snapshot(earlier) == before and not leftovers(earlier)


def test_existing_artifact_exit_code_in_a_subprocess(earlier, tiny_bert, cli_subprocess, snapshot):
    before = snapshot(earlier)
    r = cli_subprocess("compress", "--model", tiny_bert, "--out", earlier, "--no-memory")
    assert_user_error(r, "--force")
    assert snapshot(earlier) == before
