"""``nlpress push ARTIFACT REPO_ID``: the real code path up to the network, and one clear line
for every way it cannot go on (tests never reach a hub: HfApi's two network calls are recorded)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture()
def online(monkeypatch, tmp_path):
    """The hub switched on, but no token anywhere (no HF_TOKEN, an empty token file path)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


@pytest.fixture()
def recorded(monkeypatch, online):
    """HfApi.create_repo / upload_folder record their arguments instead of calling the hub."""
    from huggingface_hub import HfApi

    calls: list[tuple[str, tuple, dict]] = []

    def create_repo(self, *args, **kw):
        calls.append(("create_repo", args, {**kw, "token": self.token}))
        return f"https://huggingface.co/{args[0]}"

    def upload_folder(self, *args, **kw):
        calls.append(
            ("upload_folder", args, {**kw, "files": sorted(os.listdir(kw["folder_path"]))})
        )

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    return calls


def test_offline_is_one_clear_line(earlier, cli):
    r = cli("push", earlier, "someone/minilm-int8")  # the test session runs with HF_HUB_OFFLINE=1
    assert r.rc == 2 and len(r.err_lines) == 1
    assert r.err.startswith("error: cannot push:") and "HF_HUB_OFFLINE" in r.err


def test_no_token_is_one_clear_line(earlier, cli, online):
    r = cli("push", earlier, "someone/minilm-int8")
    assert r.rc == 2 and len(r.err_lines) == 1
    assert "no Hugging Face token" in r.err and "hf auth login" in r.err and "HF_TOKEN" in r.err


def test_push_creates_the_repo_and_uploads_the_folder(earlier, cli, recorded):
    r = cli("push", earlier, "someone/minilm-int8", "--private")
    assert r.rc == 0, r.err
    assert r.out.strip() == "https://huggingface.co/someone/minilm-int8"
    (c_name, c_args, c_kw), (u_name, _, u_kw) = recorded
    assert c_name == "create_repo" and c_args == ("someone/minilm-int8",)
    assert c_kw["private"] is True and c_kw["exist_ok"] and c_kw["token"] == "hf_test_token"
    assert u_name == "upload_folder" and u_kw["repo_id"] == "someone/minilm-int8"
    assert {"README.md", "nlpress.json", "model.onnx", "metrics.json"} <= set(u_kw["files"])


def test_refused_by_the_hub_is_one_line(earlier, cli, recorded, monkeypatch):
    from huggingface_hub import HfApi

    def refuse(self, *a, **k):
        raise ConnectionError("Failed to resolve 'huggingface.co'\nmore detail")

    monkeypatch.setattr(HfApi, "create_repo", refuse)
    r = cli("push", earlier, "someone/x")
    assert r.rc == 2 and len(r.err_lines) == 1 and "Failed to resolve" in r.err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["push", "{tmp}", "someone/x"], "not an nlpress artifact"),
        (["push", "{art}", "no-owner"], "needs an owner"),
    ],
)
def test_bad_arguments(earlier, tmp_path, cli, args, words):
    args = [a.format(tmp=tmp_path, art=earlier) for a in args]
    r = cli(*args)
    assert r.rc == 2 and len(r.err_lines) == 1 and words in r.err


def test_an_artifact_without_a_card_gets_one_before_upload(earlier, cli, recorded):
    (earlier / "README.md").unlink()
    assert cli("push", earlier, "someone/x").rc == 0
    assert (earlier / "README.md").read_text().startswith("---\n")
