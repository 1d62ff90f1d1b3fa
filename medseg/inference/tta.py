"""Mirroring test-time augmentation: average the network over every combination of allowed flips."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch


def flip_sets(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """All subsets of ``axes`` (the empty set first): 2**len(axes) passes."""
    axes = tuple(sorted(set(int(a) for a in axes)))
    return [combo for k in range(len(axes) + 1) for combo in itertools.combinations(axes, k)]


def mirrored(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
             spatial_axes: Sequence[int]) -> torch.Tensor:
    """Mean of ``flip(net(flip(x)))`` over every subset of ``spatial_axes`` (0-based spatial axes).

    Runs one flip at a time so memory stays that of a single pass; sums in float32.
    """
    sets = flip_sets(spatial_axes)
    total: torch.Tensor | None = None
    for axes in sets:
        dims = tuple(2 + a for a in axes)
        out = net(torch.flip(x, dims) if dims else x).float()
        out = torch.flip(out, dims) if dims else out
        total = out if total is None else total.add_(out)
    assert total is not None  # flip_sets always holds the empty set (no flip)
    return total.div_(len(sets)) if len(sets) > 1 else total
