"""One view of what any zoo model returns in training mode, so the training loss needs no per-model code.

Three shapes exist:

- a tensor: plain logits;
- a tuple of tensors: deep supervision, full resolution first, then lower resolutions (nnU-Net style);
- a dict (recognised by its type; e.g. the guided-attention network, :mod:`medseg.models.msga`) with ``"logits"`` (what eval mode returns, for metrics),
  ``"predictions"`` (full-resolution logit maps that each get the segmentation loss with weight 1, e.g.
  the 4 coarse and 4 refined maps of the guided-attention network) and ``"aux_loss"`` (a scalar tensor,
  already weighted, added to the total as is).

The total loss a trainer should use::

    out = unpack_train_output(model(x))
    if out.predictions:
        loss = sum(seg_loss(p, target) for p in out.predictions)
    else:
        loss = sum(w[i] * seg_loss(out.deep_supervision[i], target_at_scale_i) for i ...)
    if out.aux_loss is not None:
        loss = loss + out.aux_loss
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TrainOutput:
    """``deep_supervision[0]`` is the full-resolution logits; the rest are lower-resolution maps."""

    deep_supervision: tuple[torch.Tensor, ...]
    predictions: tuple[torch.Tensor, ...] = ()
    aux_loss: torch.Tensor | None = None

    @property
    def logits(self) -> torch.Tensor:
        """The full-resolution logits (what eval mode returns)."""
        return self.deep_supervision[0]


def unpack_train_output(output: Any) -> TrainOutput:
    """Normalise a model's training-mode output (tensor, tuple or dict) into a :class:`TrainOutput`."""
    if isinstance(output, torch.Tensor):
        return TrainOutput((output,))
    if isinstance(output, (tuple, list)):
        return TrainOutput(tuple(output))
    if isinstance(output, Mapping):
        logits = output["logits"]
        ds = (logits,) if isinstance(logits, torch.Tensor) else tuple(logits)
        return TrainOutput(ds, tuple(output.get("predictions", ())), output.get("aux_loss"))
    raise TypeError(f"unexpected model output type {type(output).__name__}")
