"""The end of every candidate's build: save the model the steps left, in its format, as an
artifact folder that :func:`nlpress.runtime.load` reads (metrics and report come after)."""

from __future__ import annotations

from nlpress.artifact import FORMAT_VERSION, META, write_json
from nlpress.errors import NlpressError
from nlpress.recipe import Recipe
from nlpress.state import State


def finalize_model(st: State, recipe: Recipe) -> dict:
    """Save the model the steps left (ONNX, or PyTorch in its weights format), its tokenizer and
    ``nlpress.json`` into ``st.tmp``; returns the meta."""
    from nlpress.models.task_module import model_input_names
    from nlpress.quantize.torch_io import save_dynamic_int8
    from nlpress.runtime.isa import built_on
    from nlpress.runtime.predictor import _max_len

    lm = st.lm
    meta = {
        "format_version": FORMAT_VERSION,
        "task": lm.task,
        "source_model": lm.name,
        "input_names": model_input_names(st.current(), lm.tokenizer),
        "pooling": lm.pooling,
        "normalize": lm.normalize,
        "id2label": lm.id2label,
        "max_length": _max_len(lm.model.config, lm.tokenizer),
        "recipe": recipe.name,
        "device": st.device,
        "built_on": built_on(),
    }
    if st.openvino is not None:
        from nlpress.export.openvino import finalize_ir

        st.current().config.save_pretrained(st.tmp)
        meta.update(finalize_ir(st, recipe.name))
    elif st.onnx is not None:
        st.onnx.rename(st.tmp / "model.onnx")
        st.current().config.save_pretrained(st.tmp)
        meta.update(
            backend="onnxruntime", model_file="model.onnx", name=f"onnxruntime-{recipe.name}"
        )
    elif st.torch_model is not None:
        if st.weights_format == "hf":
            st.torch_model.save_pretrained(st.tmp)  # safetensors, in the model's own dtype
        elif st.weights_format == "weight-only":
            from nlpress.quantize.woq_linear import save_weight_only

            save_weight_only(st.torch_model, st.quantized, st.tmp)
        elif st.weights_format == "bitmask":
            from nlpress.prune.sparse_io import save_sparse

            save_sparse(st.torch_model, st.tmp)
        else:
            save_dynamic_int8(st.torch_model, st.tmp)
        meta.update(
            backend="pytorch",
            model_file="model.safetensors",
            weights_format=st.weights_format,
            name=f"pytorch-{recipe.name}",
        )
    else:
        raise NlpressError(
            f"recipe {recipe.name!r} produced no model; add an export or quantize step"
        )
    lm.tokenizer.save_pretrained(st.tmp)
    write_json(st.tmp / META, meta)
    return meta
