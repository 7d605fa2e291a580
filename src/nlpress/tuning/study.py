"""The Optuna study behind ``nlpress tune``: storage, resumption, and a reproducible sampler.

Storage: any database URL Optuna takes (``--storage postgresql://...`` to share a study between
machines), or by default a journal file in the output folder, which Optuna locks so that several
local processes can share it safely (SQLite can lock up under concurrent writers).

Resumption: a trial being computed carries its process (host and pid) and a heartbeat. A new
worker marks a trial whose process is gone (same host) or whose heartbeat is stale (another
host) as failed, and re-queues its parameters: the interrupted trial is retried, finished
trials are never recomputed. Only one worker can move a trial to FAIL, so a retry is queued
once.

Reproducibility: a sampler's random state would differ after a restart, and so would its
proposals. So each proposal uses a fresh TPE sampler seeded with ``seed + finished trials``,
shown the finished trials in a canonical order (by parameters): the same history gives the same
next trial, however many times the run was interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from nlpress.artifact import pid_alive
from nlpress.errors import NlpressError

log = logging.getLogger(__name__)

JOURNAL = "study.journal"
HEARTBEAT_S = 10  # seconds between a running trial's heartbeats
STALE_S = 120  # a heartbeat older than this (another host) marks the trial as interrupted
STUDY_NAME = "nlpress-tune"


def open_storage(url: str | None, out: Path):
    """Optuna storage for ``url`` (None: the journal file in ``out``); unreachable: one line."""
    import optuna

    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(out / JOURNAL)))
    if "://" not in url:
        raise NlpressError(
            f"--storage {url!r} is not a database URL; use e.g. postgresql://user@host/db "
            "or sqlite:///tuned.db"
        )
    url = _driver(url)
    kw: dict[str, Any] = {}
    if url.startswith("postgresql"):
        kw = {"connect_args": {"connect_timeout": 10}}
    for attempt in range(4):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kw)
        except Exception as e:  # sqlalchemy and the drivers raise their own types
            # workers starting together race to create Optuna's tables: the loser sees a
            # unique-key violation and finds the tables made on the next try
            if "UniqueViolation" in str(e) or "already exists" in str(e):
                if attempt < 3:
                    time.sleep(1.0 + attempt)
                    continue
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise NlpressError(
                f"cannot reach --storage {_redact(url)} ({first}); check the URL"
            ) from e
    raise AssertionError("unreachable")


def _driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy 2.1 made psycopg 3 the
    default for plain ``postgresql://``; nlpress[tune] installs psycopg2 (binary wheels)."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        if importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def _redact(url: str) -> str:
    """The URL without its password."""
    head, sep, tail = url.partition("://")
    if "@" in tail and ":" in tail.split("@", 1)[0]:
        user = tail.split("@", 1)[0].split(":", 1)[0]
        tail = f"{user}:***@{tail.split('@', 1)[1]}"
    return head + sep + tail


def open_study(storage, name: str, directions: list[str]) -> tuple[Any, bool]:
    """(study, created): the first process to create the study seeds it; others load it."""
    import optuna

    try:
        return optuna.create_study(storage=storage, study_name=name, directions=directions), True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        if [d.name.lower() for d in study.directions] != directions:
            raise NlpressError(
                f"study {name!r} in this storage optimizes {study.directions}; "
                "use another --out/--storage or --force"
            ) from None
        return study, False


def whoami() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def interrupted(trial, now: float) -> bool:
    """A RUNNING trial whose worker is gone."""
    owner = trial.user_attrs.get("worker") or {}
    beat = trial.user_attrs.get("heartbeat") or trial.datetime_start.timestamp()
    if owner.get("host") == socket.gethostname() and owner.get("pid"):
        if owner["pid"] == os.getpid():
            return False
        if not pid_alive(int(owner["pid"])):
            return True  # this machine's worker is gone: no need to wait for its heartbeat
    return now - float(beat) > STALE_S  # (a reused pid, or another machine's worker)


def requeue_interrupted(study) -> int:
    """Mark interrupted trials FAIL and queue their parameters again; how many."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not interrupted(t, time.time()):
            continue
        try:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except Exception:  # another worker got there first: it queues the retry
            continue
        log.warning("trial %d was interrupted; retrying its recipe", t.number)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        n += 1
    return n


class Heartbeat:
    """Writes the running trial's heartbeat every HEARTBEAT_S seconds from a thread."""

    def __init__(self, study, trial_id: int) -> None:
        self.study, self.trial_id = study, trial_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                self.study._storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
            except Exception:  # finished meanwhile, or the database hiccuped: next beat
                pass

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


class _CanonicalView:
    """A study seen with its finished trials in a canonical order (by parameters, then values),
    so the sampler's proposal depends on the set of results, not on the order they arrived."""

    def __init__(self, study) -> None:
        self._study = study

    def __getattr__(self, name: str):
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False):
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return sorted(trials, key=_canonical)

    def get_trials(self, deepcopy: bool = True, states=None):
        return self._get_trials(deepcopy=deepcopy, states=states)


def _canonical(t) -> str:
    return json.dumps([t.params, t.values], sort_keys=True, default=str)


def make_sampler(seed: int, n_finished: int, repeated: bool = False):
    """A TPE sampler whose proposals are a function of (seed, the finished trials). The budget
    is a constraint each trial carries (``Trial.set_constraint``): TPE prefers feasible ones.

    ``repeated``: the last finished trial proposed a recipe already measured. TPE, fitted on few
    distinct expensive points, keeps proposing the same ones (54 of the 92 trials of the SST-2 run
    in docs/results.md repeated an earlier recipe, 47 of them an infeasible one), so the next proposal is drawn at random instead, a restart that
    explores. The caller derives ``repeated`` from the storage, so a resumed run makes the same
    choice as an uninterrupted one.
    """
    import optuna

    if repeated:
        return optuna.samplers.RandomSampler(seed=seed + n_finished)

    class Sampler(optuna.samplers.TPESampler):
        def infer_relative_search_space(self, study, trial):
            return super().infer_relative_search_space(_CanonicalView(study), trial)

        def sample_relative(self, study, trial, search_space):
            return super().sample_relative(_CanonicalView(study), trial, search_space)

        def sample_independent(self, study, trial, name, dist):
            return super().sample_independent(_CanonicalView(study), trial, name, dist)

    import warnings

    with warnings.catch_warnings():  # multivariate and group are "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _sampler(Sampler, seed + n_finished)


def _sampler(cls, seed: int):
    return cls(
        seed=seed,
        multivariate=True,
        group=True,  # conditional parameters (int8's options only when int8 is drawn)
        constant_liar=False,
        n_startup_trials=6,
    )
