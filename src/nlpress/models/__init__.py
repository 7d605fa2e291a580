"""Model loading and the task wrappers that give every backend the same inputs and outputs."""

from nlpress.models.loader import TASKS, LoadedModel, load_model, resolve_model_path

__all__ = ["TASKS", "LoadedModel", "load_model", "resolve_model_path"]
