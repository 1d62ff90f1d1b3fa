"""Mirroring test-time augmentation: average the network over every combination of allowed flips."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import torch

BATCH_PASSES_ELEMENTS = 1 << 20   # input values (batch x channels x voxels x passes) run in one call


def flip_sets(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """All subsets of ``axes`` (the empty set first): 2**len(axes) passes."""
    axes = tuple(sorted(set(int(a) for a in axes)))
    return [combo for k in range(len(axes) + 1) for combo in itertools.combinations(axes, k)]


def mirrored(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
             spatial_axes: Sequence[int], on_pass: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """Mean of ``flip(net(flip(x)))`` over every subset of ``spatial_axes`` (0-based spatial axes).

    Small batches (at most :data:`BATCH_PASSES_ELEMENTS` input values over all passes, e.g. the 8 passes
    of one hippocampus window) go through the network as one call, which saves a call per pass and lets a
    runtime use its cores on one larger batch; larger ones run one flip at a time so memory stays that of a
    single pass. Sums in float32, in the same order either way. ``on_pass`` sees each pass's output
    (flipped back, float32) before it is summed (quality signals: agreement between the passes).
    """
    sets = flip_sets(spatial_axes)
    parts: Iterable[torch.Tensor]
    if len(sets) > 1 and x.numel() * len(sets) <= BATCH_PASSES_ELEMENTS:
        outs = net(torch.cat([_flip(x, axes) for axes in sets])).float()
        parts = [_flip(part, axes) for part, axes in zip(outs.split(x.shape[0]), sets)]
    else:
        parts = (_flip(net(_flip(x, axes)).float(), axes) for axes in sets)
    total: torch.Tensor | None = None
    for out in parts:
        if on_pass is not None:
            on_pass(out)
        total = out if total is None else total.add_(out)
    assert total is not None  # flip_sets always holds the empty set (no flip)
    return total.div_(len(sets)) if len(sets) > 1 else total


def _flip(t: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    return torch.flip(t, tuple(2 + a for a in axes)) if axes else t
