"""Refusing a checkpoint that would load as a different model than the one saved, with nothing said.

transformers loads any checkpoint whose tensor names mostly match and reports the rest only as "unexpected keys"
in its log. When those tensors lie inside the model's own layers, the config asked for something this transformers
does not build (transformers 5's BERT ignores position_embedding_type="relative_key" and runs absolute positions),
so the model answers differently from the one that was trained. `refuse_unused_weights` is the one check that
training (train.model.load_model) and export run after from_pretrained(..., output_loading_info=True).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel


class UnusedWeightsError(ValueError):
    """A checkpoint holds tensors inside the model's own layers that the loaded model does not use."""


def unused_weights(model: "PreTrainedModel", unexpected_keys: Iterable[str]) -> list[str]:
    """The checkpoint tensors (from_pretrained's unexpected keys) that belong inside one of `model`'s own modules
    but that the model has no place for: the trace of an architecture option that this transformers ignores, such
    as position_embedding_type="relative_key" on transformers 5, whose BERT leaves each layer's
    `attention.self.distance_embedding` unused and runs absolute positions instead.

    Tensors of another task's heads and poolers do not count: they sit beside the model's modules or on its
    base model (`cls.predictions.*`, `bert.pooler.*` when fine-tuning a pretraining checkpoint)."""
    modules = {name for name, _ in model.named_modules()}
    outer = {"", model.base_model_prefix}
    buffers = {name for name, _ in model.named_buffers()}
    found = []
    for key in sorted(set(unexpected_keys) - buffers):
        owners = [_owner(name, modules) for name in (key, f"{model.base_model_prefix}.{key}")]
        if max(owners, key=len) not in outer:
            found.append(key)
    return found


def _owner(key: str, modules: set[str]) -> str:
    """The deepest module of `modules` (dotted names, "" the root) that the tensor name `key` lies in."""
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:i])
        if name in modules:
            return name
    return ""


def unknown_config_options(config: "PretrainedConfig") -> dict[str, Any]:
    """Options of `config` that its class does not define: transformers stores them and builds the model without
    them (transformers 5's BertConfig keeps position_embedding_type this way and its BERT never reads it)."""
    try:
        known = set(type(config)().to_dict())
    except (TypeError, ValueError):  # a config class without defaults for every field
        return {}
    return {k: v for k, v in config.to_dict().items() if k not in known and not k.startswith("_")}


def refuse_unused_weights(model: "PreTrainedModel", loading_info: Mapping[str, Any], source: str | Path) -> None:
    """Raise UnusedWeightsError when from_pretrained(source, output_loading_info=True) left tensors of the model's
    own layers unused, naming them and the config options this transformers does not know: such a checkpoint
    would run as a different model, without any error from transformers."""
    import transformers

    unused = unused_weights(model, loading_info.get("unexpected_keys") or ())
    if not unused:
        return
    options = unknown_config_options(model.config)
    named = ", ".join(f"{k}={v!r}" for k, v in options.items())
    raise UnusedWeightsError(
        f"{source}: {len(unused)} tensors of the checkpoint are unused by {type(model).__name__} on transformers "
        f"{transformers.__version__} (first: {', '.join(unused[:3])})"
        + (f"; its config sets options this transformers does not implement: {named}" if named else "")
        + ". The model would run without them; load it with the transformers version it was saved with, "
        "or retrain it"
    )
