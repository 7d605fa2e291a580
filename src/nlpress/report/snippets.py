"""The "how to load it" code of a model card: a few lines per tool that can open the artifact.

Each snippet is a complete program that starts from ``path = "."`` (the artifact folder; run it
there, or put the folder or hub id in its place) and leaves its result in a named variable, so
``tests/report/test_model_card.py`` runs exactly these lines and checks that every tool gives
what ``nlpress.load`` gives.

Why plain onnxruntime for ONNX artifacts and not optimum or sentence-transformers' ONNX backend:
optimum-onnx 0.1.0 pins transformers < 4.58, so neither runs beside transformers 5. nlpress's
graph already contains the pooling (and normalisation), so the few lines below are all it takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

PATH_LINE = 'path = "."  # this artifact folder, or its copy from the hub (snapshot_download)'
TEXTS = '["A first sentence.", "Another one."]'
PROMPT = '"Once upon a time"'

ONNX = """{int8_import}import numpy as np
import onnxruntime as ort
from transformers import AutoTokenizer

{path}
tokenizer = AutoTokenizer.from_pretrained(path)
options = ort.SessionOptions()
{int8}session = ort.InferenceSession(f"{{path}}/model.onnx", options, providers=["CPUExecutionProvider"])
names = [i.name for i in session.get_inputs()]
batch = tokenizer({texts}, padding=True, truncation=True, return_tensors="np")
({out},) = session.run(None, {{n: batch[n].astype(np.int64) for n in names}})
"""
# nlpress.runtime.isa: without VNNI, ORT's default U8S8 int8 kernels saturate; nlpress.load and
# the measured figures use the exact U8U8 mode there, and so does the snippet
INT8_OPTIONS = """cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
if not any(f in cpu for f in ("avx512_vnni", "avx_vnni", "amx_int8")):  # exact int8 without VNNI
    options.add_session_config_entry("session.x64quantprecision", "1")
"""
ONNX_TAIL = {
    "sentence-embedding": "# embeddings: (2, dim), pooled inside the graph{norm}\n",
    "text-classification": (
        "from transformers import AutoConfig\n\n"
        "id2label = AutoConfig.from_pretrained(path).id2label\n"
        "labels = [id2label[int(i)] for i in logits.argmax(-1)]\n"
    ),
    "causal-lm": "next_token = tokenizer.decode(int(logits[0, -1].argmax()))\n",
}
ONNX_OUT = {"sentence-embedding": "embeddings", "text-classification": "logits"}

ST = """from sentence_transformers import SentenceTransformer

{path}
model = SentenceTransformer(path, device="cpu")
embeddings = model.encode({texts})
"""
PIPELINE = """from transformers import pipeline

{path}
classify = pipeline("text-classification", model=path, device="cpu")
predictions = classify({texts})
"""
CAUSAL_LM = """from transformers import AutoModelForCausalLM, AutoTokenizer

{path}
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path)
ids = model.generate(**tokenizer({prompt}, return_tensors="pt"), max_new_tokens=20)
text = tokenizer.decode(ids[0], skip_special_tokens=True)
"""
NLPRESS = """import nlpress

{path}
model = nlpress.load(path)
{call}
"""
NLPRESS_CALL = {
    "sentence-embedding": f"embeddings = model.encode({TEXTS})  # numpy (2, dim)",
    "text-classification": f"labels = model.predict({TEXTS}).labels",
    "causal-lm": f"text = model.generate({PROMPT}, max_new_tokens=20)",
}


def snippets(folder: Path, meta: Mapping, st: bool) -> dict[str, str]:
    """{tool: code} for every tool that opens this artifact, nlpress last."""
    from nlpress.models.st_files import plain_hf_weights

    task = str(meta.get("task"))
    fill = {"path": PATH_LINE, "texts": TEXTS, "prompt": PROMPT}
    out: dict[str, str] = {}
    if meta.get("backend") == "onnxruntime":
        norm = ", L2-normalised" if meta.get("normalize") else ""
        int8 = _has_int8(folder)
        code = ONNX.format(
            **fill,
            out=ONNX_OUT.get(task, "logits"),
            int8=INT8_OPTIONS if int8 else "",
            int8_import="from pathlib import Path\n\n" if int8 else "",
        )
        out["onnxruntime"] = code + "\n" + ONNX_TAIL.get(task, "").format(norm=norm)
    elif plain_hf_weights(folder, dict(meta)):
        if task == "sentence-embedding" and st:
            out["sentence-transformers"] = ST.format(**fill)
        elif task == "text-classification":
            out["transformers"] = PIPELINE.format(**fill)
        elif task == "causal-lm":
            out["transformers"] = CAUSAL_LM.format(**fill)
    out["nlpress"] = NLPRESS.format(path=PATH_LINE, call=NLPRESS_CALL.get(task, ""))
    return out


def _has_int8(folder: Path) -> bool:
    recipe = (
        (Path(folder) / "recipe.yaml").read_text()
        if (Path(folder) / "recipe.yaml").is_file()
        else ""
    )
    return "quantize-dynamic-int8" in recipe or "quantize-static-int8" in recipe


def loading_text(folder: Path, meta: Mapping, st: bool) -> str:
    parts = []
    for tool, code in snippets(folder, meta, st).items():
        parts.append(f"With {tool}:\n\n```python\n{code.rstrip()}\n```")
    if len(parts) == 1:
        parts.insert(
            0,
            f"The weights are in nlpress's own format (`{meta.get('weights_format')}`), "
            "which plain transformers does not read:",
        )
    return "\n\n".join(parts)
