"""nlpress: make trained NLP models smaller and faster, with measured proof.

``import nlpress`` stays cheap: torch, transformers and onnxruntime are imported only when a
function that needs them is called.
"""

from nlpress.errors import NlpressError

__version__ = "0.1.0"
__all__ = [
    "NlpressError",
    "__version__",
    "compress",
    "distill",
    "finetune",
    "load",
    "push",
    "tune",
]


def compress(*args, **kwargs):
    """Compress a model; see :func:`nlpress.pipeline.compress`."""
    from nlpress.pipeline import compress as _compress

    return _compress(*args, **kwargs)


def load(path, **kwargs):
    """Load an artifact or a model folder as a predictor; see :func:`nlpress.runtime.load`."""
    from nlpress.runtime import load as _load

    return _load(path, **kwargs)


def finetune(*args, **kwargs):
    """Fine-tune a base model into a classifier artifact; see :func:`nlpress.train.finetune.finetune`."""
    from nlpress.train.finetune import finetune as _finetune

    return _finetune(*args, **kwargs)


def distill(*args, **kwargs):
    """Distill a teacher into a smaller student artifact; see :func:`nlpress.train.distill.distill`."""
    from nlpress.train.distill import distill as _distill

    return _distill(*args, **kwargs)


def tune(*args, **kwargs):
    """Search compressions for the fastest model within an accuracy budget; see
    :func:`nlpress.tune.api.tune`."""
    from nlpress.tune.api import tune as _tune

    return _tune(*args, **kwargs)


def push(artifact, repo_id, **kwargs):
    """Upload an artifact to the Hugging Face hub; see :func:`nlpress.hub.push`."""
    from nlpress.hub import push as _push

    return _push(artifact, repo_id, **kwargs)
