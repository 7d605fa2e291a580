"""A seeded, time-bounded fuzz of the CLI: generated broken model folders, data files, recipes and
artifacts, each run in this process. It fails on any exception escaping ``main`` (a traceback),
an exit code other than 0 or 2, an exit 2 that is not one ``error:`` line, and any change to files
outside the output folder (the inputs themselves, the fixture models, a canary folder).

``NLPRESS_FUZZ_SEED`` picks the seed (default 0) and ``NLPRESS_FUZZ_SECONDS`` the time budget
(default 90); the count of inputs tried is printed and recorded as the ``fuzz_inputs`` property.

Recipes that pass every check before the model is loaded are counted as accepted; the first
few of them run the whole compression, the rest stop at that point (a full run takes seconds,
and the fuzz is after inputs that break nlpress, not valid recipes).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest

SEED = int(os.environ.get("NLPRESS_FUZZ_SEED", "0"))
BUDGET = float(os.environ.get("NLPRESS_FUZZ_SECONDS", "90"))
PER_KIND = {"model": 90, "data": 110, "recipe": 90, "artifact": 90}
FULL_RUNS = 2  # accepted recipes that run the whole compression
FAST = ["--rounds", "1", "--seq-len", "8", "--batch-size", "2", "--no-memory", "--limit", "4"]


# -- random values ---------------------------------------------------------------------------------
def rand_scalar(r: random.Random):
    return r.choice(
        [
            0, 1, -1, 2, 7, 10**9, 10**30, -(10**18), 0.5, -2.5, 1e308, float("nan"), float("inf"),
            True, False, None, "", "x", "../../../etc/passwd", "/etc/passwd", "nan", "1e999",
            "\x00", "é" * 3, "a" * r.randint(1, 3000), "input_ids", "mean", "onnxruntime",
            "model.onnx", "text-classification",
        ]
    )  # fmt: skip


def rand_json(r: random.Random, depth: int = 0):
    k = r.random()
    if depth > 3 or k < 0.5:
        return rand_scalar(r)
    if k < 0.75:
        return [rand_json(r, depth + 1) for _ in range(r.randint(0, 4))]
    keys = ["task", "backend", "model_file", "input_names", "max_length", "id2label", "files",
            "format_version", "type", "path", "label", "text", "steps", "name", "1", ""]  # fmt: skip
    return {r.choice(keys): rand_json(r, depth + 1) for _ in range(r.randint(0, 4))}


def rand_json_text(r: random.Random) -> str:
    k = r.random()
    if k < 0.08:
        n = r.choice([1000, 50_000, 200_000])
        return "[" * n + "]" * n * r.randint(0, 1)
    if k < 0.16:
        return bytes(r.getrandbits(8) for _ in range(r.randint(0, 200))).decode("latin-1")
    text = json.dumps(rand_json(r), allow_nan=True)
    if r.random() < 0.15:
        text = text[: r.randint(0, len(text))]
    return text


def mutate_bytes(r: random.Random, data: bytes) -> bytes:
    k = r.random()
    if k < 0.3:
        return data[: r.randint(0, len(data))]
    if k < 0.5:
        return bytes(r.getrandbits(8) for _ in range(r.randint(0, 64))) + data[64:]
    if k < 0.6:
        return b""
    b = bytearray(data)
    for _ in range(r.randint(1, 8)):
        if b:
            b[r.randrange(len(b))] = r.getrandbits(8)
    return bytes(b)


def _dict_in(path: Path) -> dict:
    """The JSON object in ``path``, or {} where an earlier mutation broke or removed it."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


# -- generators: each returns (description, folder holding the input, CLI args) --------------------
def gen_model(r: random.Random, base: Path, work: Path, i: int, sst: Path):
    m = work / f"model{i}"
    shutil.copytree(base, m)
    what = []
    for _ in range(r.randint(1, 2)):
        k = r.random()
        if k < 0.3:
            cfg = _dict_in(m / "config.json")
            key = r.choice(["num_hidden_layers", "hidden_size", "vocab_size", "architectures",
                            "model_type", "id2label", "max_position_embeddings", "num_labels",
                            "intermediate_size", "num_attention_heads", "label2id"])  # fmt: skip
            cfg[key] = rand_json(r)
            (m / "config.json").write_text(json.dumps(cfg, allow_nan=True))
            what.append(f"config.{key}")
        elif k < 0.4:
            (m / "config.json").write_text(rand_json_text(r))
            what.append("config.json random")
        elif k < 0.6:
            f = m / "model.safetensors"
            if f.exists():
                f.write_bytes(mutate_bytes(r, f.read_bytes()))
            what.append("weights mutated")
        elif k < 0.7:
            name = r.choice(sorted(os.listdir(m)))
            p = m / name
            (p.unlink() if p.is_file() else shutil.rmtree(p))
            what.append(f"deleted {name}")
        elif k < 0.85:
            name = r.choice(["tokenizer.json", "tokenizer_config.json", "vocab.txt",
                             "special_tokens_map.json"])  # fmt: skip
            p = m / name
            p.write_bytes(
                mutate_bytes(r, p.read_bytes()) if p.exists() else rand_json_text(r).encode()
            )
            what.append(f"{name} mutated")
        else:
            (m / "modules.json").write_text(rand_json_text(r))
            if r.random() < 0.5:
                (m / "1_Pooling").mkdir(exist_ok=True)
                (m / "1_Pooling" / "config.json").write_text(rand_json_text(r))
            what.append("modules.json")
    task = r.choice([[], [], ["--task", "sentence-embedding"], ["--task", "text-classification"]])
    return f"model {what}", m, ["eval", m, "--data", sst, "--limit", "4", *task]


def gen_data(r: random.Random, art: Path, work: Path, i: int, _sst: Path):
    suffix = r.choice([".tsv", ".csv", ".jsonl", ".json", ".txt"])
    f = work / f"data{i}{suffix}"
    labels = [rand_scalar(r) if r.random() < 0.3 else r.choice([0, 1]) for _ in range(6)]
    texts = [rand_scalar(r) if r.random() < 0.2 else "the movie was good" for _ in range(6)]
    if suffix in (".tsv", ".csv"):
        sep = "\t" if suffix == ".tsv" else ","
        head = r.choice(
            ["sentence\tlabel", "text,label", "sentence1\tsentence2\tscore", "a\tb", ""]
        )
        rows = [
            f"{t}{sep}{y}" + (sep * r.randint(0, 1)) for t, y in zip(texts, labels, strict=True)
        ]
        f.write_text(
            head.replace("\t", sep) + "\n" + "\n".join(rows) + "\n", errors="surrogatepass"
        )
    elif suffix == ".jsonl":
        lines = []
        for t, y in zip(texts, labels, strict=True):
            obj = {"text": t, "label": y} if r.random() < 0.7 else rand_json(r)
            lines.append(json.dumps(obj, allow_nan=True) if r.random() < 0.9 else rand_json_text(r))
        f.write_text("\n".join(lines) + "\n", errors="surrogatepass")
    elif suffix == ".json":
        f.write_text(rand_json_text(r), errors="surrogatepass")
    else:
        f.write_bytes(mutate_bytes(r, b"the movie was good\nbad film\n" * 3))
    cols = []
    if r.random() < 0.2:
        cols = [r.choice(["--label-column", "--text-column", "--text-pair-column"]),
                r.choice(["label", "text", "sentence", "nope", "score"])]  # fmt: skip
    return (
        f"data {suffix}",
        f,
        ["eval", art, "--data", f, "--limit", str(r.choice([1, 4, 8])), *cols],
    )


STEPS = ["export-onnx", "quantize-dynamic-int8", "ort-optimize", "quantize-static-int8", "cast",
         "quantize-weight-only", "prune-magnitude", "prune-nm", "prune-structured", "smoothquant",
         "recover", "prune-wanda", "bogus-step"]  # fmt: skip
KEYS = ["opset", "per_channel", "mode", "sparsity", "bits", "group_size", "backend", "n", "m",
        "dtype", "min_fidelity", "method", "num_samples", "targets", "ignore", "1"]  # fmt: skip


def gen_recipe(r: random.Random, model: Path, work: Path, i: int, sst: Path):
    f = work / f"recipe{i}.yaml"
    k = r.random()
    if k < 0.15:
        depth = r.randint(2, 9)
        lines = ["a0: &a0 [" + ", ".join(["x"] * 10) + "]"]
        lines += [f"a{j}: &a{j} [" + ", ".join([f"*a{j - 1}"] * 10) + "]" for j in range(1, depth)]
        f.write_text("\n".join(lines) + f"\nname: *a{depth - 1}\nsteps: [export-onnx]\n")
    elif k < 0.3:
        f.write_bytes(
            mutate_bytes(
                r, b"steps:\n  - export-onnx: {opset: 17}\n  - quantize-dynamic-int8: {}\n"
            )
        )
    else:
        steps = []
        for _ in range(r.randint(0, 4)):
            name = r.choice(STEPS)
            params = {r.choice(KEYS): rand_json(r, 2) for _ in range(r.randint(0, 2))}
            steps.append(r.choice([name, {name: params}, {name: None}, rand_json(r, 2)]))
        doc = {"steps": steps}
        if r.random() < 0.3:
            doc[r.choice(["name", "version", "extra"])] = rand_json(r, 2)
        text = json.dumps(doc, allow_nan=True)  # JSON is YAML
        f.write_text(text if r.random() < 0.9 else text.replace("{", "[", 1))
    sets = []
    for _ in range(r.choice([0, 0, 0, 1, 2])):
        target = r.choice(["export-onnx", "1", "7", "quantize-dynamic-int8", "x"])
        sets += [
            "--set",
            f"{target}.{r.choice(KEYS)}={r.choice(['17', '[', 'null', '{a: 1}', '&a [*a]', '1e999'])}",
        ]
    out = work / f"out-recipe{i}"
    args = ["compress", "--model", model, "--data", sst, "--recipe", f, *sets, "--out", out, *FAST]
    return "recipe", f, args


def gen_artifact(r: random.Random, art: Path, work: Path, i: int, sst: Path):
    art = r.choice([art, *TORCH_ART])  # the ONNX artifact, or the PyTorch dynamic-int8 one
    a = work / f"art{i}"
    shutil.copytree(art, a)
    what = []
    for _ in range(r.randint(1, 2)):
        k = r.random()
        if k < 0.45:
            meta = _dict_in(a / "nlpress.json")
            key = r.choice(["task", "backend", "model_file", "input_names", "max_length", "id2label",
                            "files", "format_version", "pooling", "normalize", "weights_format",
                            "name"])  # fmt: skip
            meta[key] = (
                rand_json(r)
                if r.random() < 0.8
                else r.choice(["../" * 8 + "etc/passwd", "/etc/passwd"])
            )
            (a / "nlpress.json").write_text(json.dumps(meta, allow_nan=True))
            what.append(f"nlpress.{key}")
        elif k < 0.55:
            (a / "nlpress.json").write_text(rand_json_text(r))
            what.append("nlpress.json random")
        elif k < 0.8:
            name = r.choice(sorted(p.name for p in a.iterdir() if p.is_file()))
            (a / name).write_bytes(mutate_bytes(r, (a / name).read_bytes()))
            what.append(f"{name} mutated")
        elif k < 0.9:
            name = r.choice(sorted(p.name for p in a.iterdir()))
            p = a / name
            (p.unlink() if p.is_file() else shutil.rmtree(p))
            what.append(f"deleted {name}")
        else:
            name = r.choice(["model.onnx", "tokenizer.json", "config.json", "extra-link"])
            (a / name).unlink(missing_ok=True)
            (a / name).symlink_to(
                r.choice(["/etc/passwd", str(art / "model.onnx"), "/nonexistent"])
            )
            what.append(f"symlink {name}")
    cmd = r.choice(["eval", "eval", "bench", "compress"])
    if cmd == "eval":
        args = ["eval", a, "--data", sst, "--limit", "4"]
    elif cmd == "bench":
        args = ["bench", a, *FAST]
    else:  # --force over a damaged artifact: refused or replaced, never anything else
        args = ["compress", "--model", MODEL[0], "--data", sst, "--out", a, "--force", *FAST]
    return f"artifact {what} {cmd}", a, args


def _digest(folder: Path) -> dict[str, str]:
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            rel = str(p.relative_to(folder))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "<dir>"
    return out


MODEL: list[Path] = []  # the tiny classifier's folder, set by the test
TORCH_ART: list[Path] = []  # a PyTorch artifact of it, set by the test


class _Accepted(Exception):
    """Raised where compress would load the model: the recipe passed every check."""


@pytest.fixture(scope="module")
def torch_artifact(tiny_classifier, tmp_path_factory) -> Path:
    import nlpress
    from nlpress.bench.harness import BenchConfig

    out = tmp_path_factory.mktemp("fuzz-torch") / "art"
    bench = BenchConfig(rounds=1, seq_len=8, progress=False)
    nlpress.compress(tiny_classifier, "text-classification", None, "int8-torch", out, limit=4,
                     bench=bench, memory=False, progress=False)  # fmt: skip
    return out


def test_fuzz_cli(
    tiny_classifier, cls_artifact, torch_artifact, tmp_path, capsys, monkeypatch, record_property
):
    from nlpress.cli import main
    from nlpress.models import loader

    work = tmp_path / "fuzz"
    work.mkdir()
    MODEL[:] = [Path(tiny_classifier)]
    TORCH_ART[:] = [Path(torch_artifact)]
    sst = tmp_path / "sst.tsv"
    sst.write_text(
        "sentence\tlabel\nthe movie was good\t1\na bad film\t0\ngreat fun\t1\nboring\t0\n"
    )
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "precious.txt").write_text("do not touch")
    guarded = {p: _digest(p) for p in (tiny_classifier, cls_artifact, torch_artifact, canary)}
    sst_before = sst.read_bytes()

    r = random.Random(SEED)
    kinds = [k for k, n in PER_KIND.items() for _ in range(n)]
    r.shuffle(kinds)
    gens = {"model": gen_model, "data": gen_data, "recipe": gen_recipe, "artifact": gen_artifact}
    bases = {"model": tiny_classifier, "data": cls_artifact, "recipe": tiny_classifier,
             "artifact": cls_artifact}  # fmt: skip
    real_load = loader.load_model
    full = {"n": 0, "compress": False}

    def load_model(*a, **k):  # compress imports it when it runs, so this one is what it gets
        if not full["compress"]:
            return real_load(*a, **k)
        if full["n"] >= FULL_RUNS:
            raise _Accepted
        full["n"] += 1
        return real_load(*a, **k)

    monkeypatch.setattr(loader, "load_model", load_model)
    failures, counts, codes = [], {}, {0: 0, 2: 0, "accepted": 0}
    t0 = time.perf_counter()
    for i, kind in enumerate(kinds):
        if time.perf_counter() - t0 > BUDGET:
            break
        desc, folder, args = gens[kind](r, Path(bases[kind]), work, i, sst)
        out = next((Path(args[j + 1]) for j, a in enumerate(args) if a == "--out"), None)
        before = (
            _digest(folder)
            if folder.is_dir() and folder != out
            else (folder.read_bytes() if folder.is_file() else None)
        )
        capsys.readouterr()
        full["compress"] = args[0] == "compress"
        try:
            rc = main([str(a) for a in args])
        except _Accepted:
            rc = "accepted"
        except BaseException as e:  # noqa: BLE001 - a traceback is what this test looks for
            failures.append(f"#{i} {desc}: {type(e).__name__}: {str(e)[:300]} | args {args}")
            rc = None
        err = capsys.readouterr().err
        counts[kind] = counts.get(kind, 0) + 1
        if rc is None:
            continue
        codes[rc] = codes.get(rc, 0) + 1
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if rc == 2 and (len(lines) != 1 or not lines[0].startswith("error: ")):
            failures.append(f"#{i} {desc}: exit 2 but stderr {err[-500:]!r} | args {args}")
        elif rc not in (0, 2, "accepted"):
            failures.append(f"#{i} {desc}: exit {rc}: {err[-500:]!r} | args {args}")
        if "Traceback" in err:
            failures.append(f"#{i} {desc}: traceback in stderr {err[-500:]!r}")
        if folder != out:
            after = (
                _digest(folder)
                if folder.is_dir()
                else (folder.read_bytes() if folder.is_file() else None)
            )
            if after != before:
                failures.append(f"#{i} {desc}: the input was changed | args {args}")
        if out is not None and out != folder and out.exists():
            shutil.rmtree(out)
    seconds = time.perf_counter() - t0
    n = sum(counts.values())
    for p, digest in guarded.items():
        if _digest(p) != digest:
            failures.append(f"{p} changed")
    if sst.read_bytes() != sst_before:
        failures.append("the data file changed")
    leftovers = [p.name for p in tmp_path.rglob(".*nlpress-*")]
    if leftovers:
        failures.append(f"temporary folders left: {leftovers[:5]}")
    record_property("fuzz_inputs", n)
    with capsys.disabled():
        print(f"\nfuzz: {n} inputs in {seconds:.0f}s (seed {SEED}): {counts}; exits {codes}")
    assert not failures, f"{len(failures)} of {n} inputs failed:\n" + "\n".join(failures[:15])
    assert n >= min(sum(PER_KIND.values()), 100), f"only {n} inputs in the time budget"
