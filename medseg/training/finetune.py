"""Fine-tuning: load pretrained weights into a model built for new labels/channels, saying what happened.

Every tensor of the target model is either *loaded* (same name and shape), *re-initialised* (an output
head whose class count changed), or *adapted* (an input layer whose channel count changed: the
pretrained kernel is tiled across the new channels, as STU-Net's fine-tuning does). Any other shape
mismatch is an error naming the tensors; a source that matches nothing is refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import torch
from torch import nn

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger

logger = get_logger(__name__)


@dataclass
class TransferReport:
    loaded: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.loaded)} tensors loaded, {len(self.reinitialised)} re-initialised "
                f"({', '.join(self.reinitialised) or 'none'}), {len(self.adapted)} adapted "
                f"({', '.join(self.adapted) or 'none'}), {len(self.unused)} unused")


def _is_head(key: str, target: torch.Tensor, source: torch.Tensor, out_channels: int) -> bool:
    """An output layer: first dim is the class count and differs, every other dim agrees."""
    if target.ndim == 0 or target.shape[0] != out_channels or source.shape[0] == out_channels:
        return False
    return target.shape[1:] == source.shape[1:]


def _is_input(target: torch.Tensor, source: torch.Tensor) -> bool:
    """An input convolution whose in-channel count differs (dim 1), every other dim agrees."""
    return (target.ndim >= 3 and target.shape[0] == source.shape[0] and target.shape[2:] == source.shape[2:]
            and target.shape[1] != source.shape[1])


def transfer_weights(model: nn.Module, source: dict[str, torch.Tensor], *, out_channels: int,
                     reinit_heads: bool = True, source_name: str | PathLike = "checkpoint") -> TransferReport:
    """Load ``source`` into ``model`` as described in the module docstring and return the report."""
    source = {k.removeprefix("module."): v for k, v in source.items()}
    target = model.state_dict()
    report = TransferReport()
    new_state: dict[str, torch.Tensor] = {}
    problems = []
    for key, tensor in target.items():
        if key not in source:
            continue
        src = source[key]
        if src.shape == tensor.shape:
            new_state[key] = src.to(tensor.dtype)
            report.loaded.append(key)
        elif reinit_heads and _is_head(key, tensor, src, out_channels):
            report.reinitialised.append(key)
        elif _is_input(tensor, src):
            reps = -(-tensor.shape[1] // src.shape[1])
            new_state[key] = src.repeat(1, reps, *([1] * (src.ndim - 2)))[:, : tensor.shape[1]].to(tensor.dtype)
            report.adapted.append(key)
        else:
            problems.append(f"{key} {tuple(src.shape)} vs {tuple(tensor.shape)}")
    # a head's bias follows its weight: re-initialise both
    for key in list(report.reinitialised):
        prefix = key.rsplit(".", 1)[0]
        for other in [k for k in report.loaded if k.rsplit(".", 1)[0] == prefix]:
            report.loaded.remove(other)
            new_state.pop(other)
            report.reinitialised.append(other)
    if problems:
        raise MedsegError("pretrained weights do not fit this architecture: " + "; ".join(problems[:6]),
                          path=source_name, hint="check the model name and size of the checkpoint")
    if not report.loaded:
        raise MedsegError("no tensor of the checkpoint matches this model", path=source_name,
                          hint="it is for another architecture; pick the matching --model")
    report.unused = sorted(set(source) - set(target))
    missing = sorted(set(target) - set(source))
    report.reinitialised += [k for k in missing if k not in report.reinitialised]
    model.load_state_dict({**target, **new_state}, strict=True)
    logger.info("fine-tune load from %s: %s", source_name, report.summary())
    return report


def read_source_weights(source: str, weights_dir: str | PathLike | None = None) -> tuple[dict, str]:
    """The state dict of ``NAME[.TAG]`` (pretrained zoo weights), a medseg training checkpoint, or any
    weights file (official STU-Net ``.model``/``.pth``, MONAI bundle, safetensors)."""
    from medseg.models import create_model
    from medseg.models.weights import read_state_dict

    path = Path(source)
    if path.exists():
        return read_state_dict(path), str(path)
    if "." not in source:
        raise MedsegError(f"{source!r} is neither a file nor NAME.TAG", hint="e.g. --from stunet_t.hippocampus")
    model = create_model(source, weights_dir=weights_dir)
    return model.state_dict(), source


def prepare_finetune(recipe, *, weights_dir: str | PathLike | None = None):
    """Data, model and transfer report for ``recipe.finetune.source`` on ``recipe.data``."""
    from medseg.training.prepare import build_model_for, prepare_data

    if not recipe.finetune.source:
        raise MedsegError("nothing to fine-tune from", hint="give --from NAME.TAG or a checkpoint file")
    data = prepare_data(recipe)
    model = build_model_for(recipe, data)
    state, name = read_source_weights(recipe.finetune.source, weights_dir)
    report = transfer_weights(model, state, out_channels=model.card.out_channels, source_name=name)
    return data, model, report
