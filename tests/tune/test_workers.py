"""Tune workers sharing a study. Two on one real PostgreSQL server (Debian's postgresql package): every trial
runs once, both workers contribute, the front is complete."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import pytest


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).is_file():
            return str(d / name)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def postgres():
    """A PostgreSQL server in a temporary folder on a free loopback port; its URL."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    # a folder of its own under /tmp: pytest's tmp folders are private to root, which
    # PostgreSQL's own user cannot enter
    root = Path(tempfile.mkdtemp(prefix="nlpress-pg-"))
    data = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use its own system user
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser")
        prefix = [runuser, "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        os.chmod(root, 0o700)
    port = _free_port()
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "nlpress"], **run)
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = root / "log.txt"
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(log), "-w", "start"], **run
    )
    try:
        yield f"postgresql://nlpress@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )


def test_two_workers_share_one_postgresql(kit, tiny_classifier, dev_file, tmp_path, postgres):
    trials = 5
    procs, outs = [], []
    for i in range(2):  # two "machines": their own --out, one database
        out = tmp_path / f"worker{i}"
        outs.append(out)
        args = ["--model", tiny_classifier, "--data", dev_file, "--trials", trials, *kit.FAST]
        args += ["--storage", postgres, "--out", out, "--json"]
        procs.append(
            subprocess.Popen(
                kit.tune_command(*args),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=kit.env(),
            )
        )
    results = [p.communicate(timeout=900) for p in procs]
    for p, (_o, e) in zip(procs, results, strict=True):
        assert p.returncode == 0, e[-2000:]
    rows = kit.study_rows(postgres)
    built = kit.computed(rows)
    # every recipe computed once, by one of the workers; both took part
    assert trials <= len(built) <= trials + 1
    assert max(Counter(t.user_attrs["key"] for t in built).values()) == 1
    assert len({t.user_attrs["worker"]["pid"] for t in built}) == 2
    # the worker that finished last saw every trial: its front is the study's whole front
    fronts = [json.loads((o / "summary.json").read_text()) for o in outs]
    last = max(fronts, key=lambda s: s["n_finished"])
    assert {r["key"] for r in last["front"]} == {k for k, *_ in kit.front_of(rows)}
    for o in outs:
        assert (o / "best" / "nlpress.json").is_file()


def test_local_workers_share_the_journal(kit, tiny_classifier, dev_file, tmp_path):
    """--workers 2 on one machine: the default journal file is shared safely."""
    out = tmp_path / "tuned"
    args = ["--model", tiny_classifier, "--data", dev_file, "--trials", 5, *kit.FAST]
    done = kit.run_tune(*args, "--workers", 2, "--out", out)
    assert done.returncode == 0, done.stderr[-2000:]
    built = kit.computed(kit.study_rows(None, out))
    assert 5 <= len(built) <= 6
    assert max(Counter(t.user_attrs["key"] for t in built).values()) == 1
    assert len({t.user_attrs["worker"]["pid"] for t in built}) == 2
    assert (out / "best" / "nlpress.json").is_file() and (out / "report.html").is_file()
