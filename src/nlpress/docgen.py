"""``docs/recipes.md``, generated from the step configs, so the reference cannot drift from the code.

``python -m nlpress.docgen`` writes it; ``python -m nlpress.docgen --check`` exits 1 when the file
differs from what the code gives (``tests/test_docgen.py`` runs the same comparison).

For every step in ``STEP_CONFIGS``: every key, its type, range, default and *why*. Type, range
and default come from the pydantic fields (``Literal`` choices, ``ge``/``gt``/``le``/``lt``
bounds, ``default`` / ``default_factory``). The why is the comment that
:mod:`nlpress.step_configs` writes beside each field (STYLE.md: "defaults with a comment saying
why"): the comment lines right above the field and the comment at its end, read with ``ast`` and
``tokenize`` from the class source, or a ``Field(description=...)`` where one is given. Why parse
comments instead of moving them into ``description=`` strings: the comments are where the
authors of a step already write the reason, each new step is documented without extra work, and
the config file keeps reading like code.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import json
import sys
import textwrap
import tokenize
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

DOC = Path("docs") / "recipes.md"


def field_comments(cls: type) -> dict[str, str]:
    """{field name: its why-comment} for the fields ``cls`` itself declares."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    out: dict[str, str] = {}
    (node,) = ast.parse(source).body
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        above, n = [], stmt.lineno - 1
        while n >= 1 and n in comments and lines[n - 1].strip().startswith("#"):
            above.insert(0, comments[n])
            n -= 1
        beside = [comments[i] for i in range(stmt.lineno, stmt.end_lineno + 1) if i in comments]
        out[stmt.target.id] = " ".join(above + beside)
    return out


def why(cls: type, name: str) -> str:
    """The why of ``cls.name``: its description, else the comment where it is declared."""
    info = cls.model_fields[name]
    if info.description:
        return info.description
    for klass in cls.__mro__:  # the class that declares the field (e.g. a shared base)
        if name in inspect.get_annotations(klass):
            return field_comments(klass).get(name, "")
    return ""


def type_text(info: FieldInfo) -> str:
    ann = info.annotation
    args = getattr(ann, "__args__", ())
    if getattr(ann, "__origin__", None) is not None and "Literal" in repr(ann.__origin__):
        return "one of " + ", ".join(f"`{a}`" for a in args)
    text = repr(ann) if not isinstance(ann, type) else ann.__name__
    return text.replace("typing.", "").replace("NoneType", "null").replace(" | None", " or null")


def range_text(info: FieldInfo) -> str:
    parts = []
    for m in info.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                parts.append(f"{sym} {getattr(m, attr):g}")
    return ", ".join(parts)


def default_text(info: FieldInfo) -> str:
    value: Any = info.get_default(call_default_factory=True)
    # a nested step config (select-backend's int8 settings, say) is shown as its fields
    return f"`{json.dumps(value, default=lambda v: v.model_dump(exclude_defaults=True))}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def step_section(name: str, cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    doc = "" if cls.__doc__ is None or cls.__doc__ == cls.__mro__[1].__doc__ else doc
    rows = ["| key | type | range | default | why |", "|---|---|---|---|---|"]
    for key, info in cls.model_fields.items():
        cells = (f"`{key}`", type_text(info), range_text(info), default_text(info), why(cls, key))
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    head = f"### `{name}`\n\n" + (f"{doc}\n\n" if doc else "")
    return head + "\n".join(rows)


def builtin_table() -> str:
    from nlpress.recipe import BUILTIN

    rows = ["| recipe | steps (values that differ from the defaults) |", "|---|---|"]
    for name, spec in BUILTIN.items():
        steps = []
        for step in spec["steps"]:
            ((step_name, params),) = step.items()
            shown = ", ".join(f"{k}: {json.dumps(v)}" for k, v in (params or {}).items())
            steps.append(f"`{step_name}`" + (f" ({shown})" if shown else ""))
        rows.append(f"| `{name}` | " + _cell(" -> ".join(steps)) + " |")
    return "\n".join(rows)


def render() -> str:
    from nlpress.recipe import RECIPE_VERSION
    from nlpress.step_configs import STEP_CONFIGS

    parts = [
        "# Recipe reference",
        "<!-- generated by `python -m nlpress.docgen` from src/nlpress/step_configs.py and the "
        "built-in recipes of src/nlpress/recipe.py; do not edit by hand "
        "(tests/test_docgen.py fails when this file is stale) -->",
        "A recipe is a YAML file (or a built-in name) with a list of steps run in order:\n\n"
        "```yaml\n"
        f"version: {RECIPE_VERSION}\n"
        "name: int8\n"
        "steps:\n"
        "  - export-onnx: {opset: 17}\n"
        "  - quantize-dynamic-int8: {per_channel: true}\n"
        "  - ort-optimize: {}\n"
        "```\n\n"
        "Every key of every step is checked before any model is loaded: an unknown step, an "
        "unknown key or a value out of range is an error that names it. `--set STEP.KEY=VALUE` "
        "changes one value of any recipe from the command line. `targets` and `ignore` take "
        "exact module or node names, or `re:` regular expressions.",
        "## Built-in recipes",
        builtin_table(),
        "## Steps",
        *(step_section(name, cls) for name, cls in STEP_CONFIGS.items()),
    ]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nlpress.docgen", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DOC, help=f"file to write (default {DOC})")
    p.add_argument("--check", action="store_true", help="exit 1 if the file is not up to date")
    a = p.parse_args(argv)
    text = render()
    if a.check:
        current = a.out.read_text(encoding="utf-8") if a.out.is_file() else ""
        if current != text:
            print(f"{a.out} is stale: run `python -m nlpress.docgen`", file=sys.stderr)
            return 1
        return 0
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text, encoding="utf-8")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
