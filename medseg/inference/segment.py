"""Run one model over one preprocessed image with the sliding-window engine, as a card says.

The one entry used by prediction (:class:`medseg.inference.predictor.Predictor`), validation during
training (:func:`medseg.training.loop.validate`) and every cascade stage, so all of them place windows,
blend, mirror and decode labels the same way. 2D models run slice by slice through a window of size 1 along
``card.slice_axis`` (a 2D picture gets a trailing axis of size 1).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from medseg.core.card import ModelCard
from medseg.inference.sliding_window import (
    EngineOptions,
    auto_batch_size,
    sliding_window_labels,
    window_network,
)
from medseg.inference.stitcher import StitchResult
from medseg.models.heads import OutputHead, head_for

if TYPE_CHECKING:
    from medseg.quality.probe import QualityProbe

Network = nn.Module | Callable[[torch.Tensor], torch.Tensor]


def engine_options(card: ModelCard, shape: tuple[int, ...], *, overlap: float = 0.5, tta: bool = False,
                   batch_size: int | None = None, compute: str | torch.device = "cpu",
                   stitch: str | torch.device = "cpu", amp: bool = False, accumulate: str = "auto",
                   probabilities: bool = False, threshold: float = 0.5) -> EngineOptions:
    """Engine settings for ``card`` on a 3D grid of ``shape`` (a 2D picture: ``(X, Y, 1)``)."""
    if card.spatial_dims == 3:
        roi = tuple(int(r) for r in card.roi_size)
        mirror = tuple(a for a in card.mirror_axes if 0 <= a < 3)
        order = None
    else:
        axis = card.slice_axis if shape[2] != 1 else 2
        plane = [a for a in range(3) if a != axis]
        roi_list = [int(r) for r in card.roi_size]
        roi_list.insert(axis, 1)
        roi = tuple(roi_list)
        mirror = tuple(plane[a] for a in card.mirror_axes if 0 <= a < 2)
        order = (axis, *sorted(plane, key=lambda a: -shape[a]))
    compute = torch.device(compute)
    batch = batch_size or auto_batch_size(card.out_channels, roi, compute.type)
    on_gpu = compute.type == "cuda"
    return EngineOptions(
        roi=roi, overlap=overlap, mirror_axes=mirror if tta else (), batch_size=batch,  # type: ignore[arg-type]
        compute_device=str(compute), stitch_device=str(torch.device(stitch)), amp=amp and on_gpu,
        channels_last=on_gpu and card.spatial_dims == 3, accumulate=accumulate, probabilities=probabilities,
        order=order, threshold=threshold,
    )


def segment(network: Network, card: ModelCard, x: torch.Tensor, options: EngineOptions, *,
            head: OutputHead | None = None, progress: Callable[[int, int], None] | None = None,
            mask: torch.Tensor | None = None, probe: QualityProbe | None = None) -> StitchResult:
    """Labels (and probabilities / soft map) of ``network`` on ``x`` ``(C, X, Y, Z)``, decoded by the card's
    head. ``network`` returns logits (eval mode); the head turns them into what is stitched. ``mask``
    ``(X, Y, Z)``: the body / non-zero region; windows cover its box and skip where it is empty. ``probe``
    (softmax models) runs the mirroring TTA itself and gathers quality signals (:mod:`medseg.quality`)."""
    head = head or head_for(card)
    axis = options.order[0] if options.order else card.slice_axis
    net = window_network(network, spatial_dims=card.spatial_dims, slice_axis=axis)
    if type(head).window_output is not OutputHead.window_output:   # SAUNA: stitch the signed map, not logits
        inner = net

        def net(batch: torch.Tensor) -> torch.Tensor:
            return head.window_output(inner(batch))

    if probe is not None:
        net, options = probe.wrap(net, options)
    return sliding_window_labels(x, net, channels=card.out_channels, activation=head, options=options,
                                 progress=progress, mask=mask)


def on_grid(image: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """A channel-first image as the engine's 3D grid: a 2D picture ``(C, X, Y)`` gets a trailing axis."""
    return image[..., None] if image.ndim == 3 and spatial_dims == 2 else image


@torch.no_grad()
def segment_case(model: Network, card: ModelCard, image: torch.Tensor, *, device: str | torch.device = "cpu",
                 overlap: float = 0.5, tta: bool = False, batch_size: int | None = 2,
                 head: OutputHead | None = None) -> torch.Tensor:
    """Label map ``(*S)`` of one preprocessed image ``(C, *S)`` (as training holds it): the engine with the
    prediction defaults but no TTA (what validation during training runs)."""
    x = on_grid(image.float(), card.spatial_dims)
    head = head or head_for(card)
    options = engine_options(card, tuple(x.shape[1:]), overlap=overlap, tta=tta, batch_size=batch_size,
                             compute=device, threshold=head.default_threshold)
    labels = segment(model, card, x, options, head=head).labels
    return labels[..., 0] if x is not image and x.ndim == 4 and image.ndim == 3 else labels
