"""Artifacts on the Hugging Face hub: the files the hub and its tools read, and ``push``.

``prepare_for_hub`` runs at the end of every artifact writer (``compress``, ``finetune``,
``distill``): it adds the sentence-transformers files where they load
(:mod:`nlpress.models.st_files`) and the model card ``README.md``
(:mod:`nlpress.report.model_card`). ``push`` uploads a finished artifact with ``huggingface_hub``
(``create_repo`` + ``upload_folder``); every way it can fail before or at the network (not an
artifact, offline, no token, refused by the hub) is one :class:`~nlpress.errors.NlpressError`
that says what to do.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from nlpress.errors import NlpressError

log = logging.getLogger(__name__)


def prepare_for_hub(folder: Path, source: Path | None = None, name: str | None = None) -> None:
    """Write the loader files and the model card into an artifact folder being built.

    ``source`` is the original model's folder (its sentence-transformers files are carried
    over); ``name`` the artifact's final name (the folder may still be a temporary one).
    """
    from nlpress.artifact import read_meta
    from nlpress.models.st_files import write_sentence_transformers_files
    from nlpress.report.model_card import write_model_card

    folder = Path(folder)
    write_sentence_transformers_files(folder, source, read_meta(folder))
    write_model_card(folder, name)


def _offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get(v, "") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(
        f.upper() in ("1", "ON", "YES", "TRUE") for f in flags
    )


def push(
    artifact: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload the artifact folder to the hub model repo ``repo_id`` (created if missing).

    Returns the repo's URL. The token is ``token``, else the one ``huggingface-cli login`` or
    ``HF_TOKEN`` gives.
    """
    from nlpress.artifact import is_artifact

    folder = Path(artifact)
    if not is_artifact(folder):
        raise NlpressError(
            f"{folder} is not an nlpress artifact (no nlpress.json); pass the --out folder"
        )
    if "/" not in repo_id.strip("/"):
        raise NlpressError(f"repo id {repo_id!r} needs an owner: use USER/NAME or ORG/NAME")
    if _offline():
        raise NlpressError(
            "cannot push: the Hugging Face hub is switched off here (HF_HUB_OFFLINE); "
            "unset it on a machine with network access and run the command again"
        )
    from huggingface_hub import HfApi, get_token

    token = token or get_token()
    if not token:
        raise NlpressError(
            "cannot push: no Hugging Face token; run `hf auth login` or set HF_TOKEN "
            "(a token with write access, from https://huggingface.co/settings/tokens)"
        )
    if not (folder / "README.md").is_file():  # written before model cards existed
        from nlpress.report.model_card import write_model_card

        write_model_card(folder, repo_id.split("/")[-1])
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
        api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            commit_message=commit_message or f"nlpress artifact {folder.name}",
        )
    except Exception as e:  # network down, bad token, no rights: all end the command the same way
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise NlpressError(
            f"could not push to {repo_id!r} ({reason}); check the network, the token's write "
            "access and the repo id"
        ) from e
    log.info("pushed %s to %s", folder, url)
    return str(url)
