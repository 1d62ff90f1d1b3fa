"""Landmark-graph templates for HybridGNet: closed-contour adjacency, Laplacian, pooling and unpooling.

A template is an ordered list of organs, each a closed contour of ``n`` landmarks. Node ``i`` of an organ
is joined to ``i - 1`` and ``(i + 1) mod n``; organs are not joined to each other, so the adjacency is
block-diagonal. The coarse graph halves every contour (``ceil(n / 2)`` nodes, node ``j`` the mean of fine
nodes ``2j`` and ``2j + 1``) and unpooling goes back (even nodes copy, odd nodes average their two coarse
neighbours), as in Gaggion et al.'s ``utils/utils.py``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError

#: The chest X-ray organs of the JSRT/SCR annotation and their landmark counts (HybridGNet papers).
CXR_ORGANS: Mapping[str, int] = {
    "right_lung": 44, "left_lung": 50, "heart": 26, "right_clavicle": 23, "left_clavicle": 23,
}


@dataclass(frozen=True)
class GraphTemplate:
    """Organs (name, landmark count) in node order; node ``offsets[k]`` is organ ``k``'s first landmark."""

    organs: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        if not self.organs:
            raise ValueError("a graph template needs at least one organ")
        names = [name for name, _ in self.organs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate organ names in graph template: {names}")
        for name, n in self.organs:
            if int(n) < 3:
                raise ValueError(f"organ {name!r}: a closed contour needs at least 3 landmarks, got {n}")

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, int] | list] | Mapping[str, int]) -> GraphTemplate:
        """Build from ``[("right_lung", 44), ...]`` or ``{"right_lung": 44, ...}`` (JSON round trips)."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        return cls(tuple((str(name), int(n)) for name, n in items))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.organs)

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(int(n) for _, n in self.organs)

    @property
    def num_nodes(self) -> int:
        return sum(self.counts)

    @property
    def offsets(self) -> tuple[int, ...]:
        out, total = [], 0
        for n in self.counts:
            out.append(total)
            total += n
        return tuple(out)

    def slice(self, organ: str) -> slice:
        """The node range of ``organ``."""
        k = self.names.index(organ)
        return slice(self.offsets[k], self.offsets[k] + self.counts[k])

    def coarse(self) -> GraphTemplate:
        """The down-sampled template: every contour halved (rounded up)."""
        return GraphTemplate(tuple((name, math.ceil(n / 2)) for name, n in self.organs))

    def edge_index(self) -> torch.Tensor:
        """(2, E) int64 edges, both directions, one cycle per organ (torch-geometric layout)."""
        src, dst = [], []
        for offset, n in zip(self.offsets, self.counts):
            for i in range(n):
                a, b = offset + i, offset + (i + 1) % n
                src += [a, b]
                dst += [b, a]
        return torch.tensor([src, dst], dtype=torch.long)

    def adjacency(self) -> torch.Tensor:
        """Dense (N, N) symmetric 0/1 adjacency."""
        a = torch.zeros(self.num_nodes, self.num_nodes)
        src, dst = self.edge_index()
        a[src, dst] = 1.0
        return a

    def laplacian(self) -> torch.Tensor:
        """Symmetric normalised Laplacian ``I - D^-1/2 A D^-1/2`` (what ChebConv's "sym" normalisation uses)."""
        a = self.adjacency()
        d = a.sum(1).clamp_min(1).rsqrt()
        return torch.eye(self.num_nodes) - d[:, None] * a * d[None, :]

    def pool_matrix(self) -> torch.Tensor:
        """(N_coarse, N): coarse node ``j`` is the mean of fine nodes ``2j`` and ``2j + 1`` (a copy at the end)."""
        coarse = self.coarse()
        p = torch.zeros(coarse.num_nodes, self.num_nodes)
        for (off_f, n), off_c in zip(zip(self.offsets, self.counts), coarse.offsets):
            for j in range(math.ceil(n / 2)):
                members = [2 * j] if 2 * j + 1 >= n else [2 * j, 2 * j + 1]
                for i in members:
                    p[off_c + j, off_f + i] = 1.0 / len(members)
        return p

    def unpool_matrix(self) -> torch.Tensor:
        """(N, N_coarse): even fine node ``i`` copies coarse ``i/2``; odd ones average ``i//2`` and ``i//2+1``
        (or copy ``i//2`` when ``i//2+1`` would run past the contour's end)."""
        coarse = self.coarse()
        u = torch.zeros(self.num_nodes, coarse.num_nodes)
        for (off_f, n), (off_c, m) in zip(zip(self.offsets, self.counts), zip(coarse.offsets, coarse.counts)):
            for i in range(n):
                j = i // 2
                if i % 2 == 0 or j + 1 >= m:
                    u[off_f + i, off_c + j] = 1.0
                else:
                    u[off_f + i, off_c + j] = 0.5
                    u[off_f + i, off_c + j + 1] = 0.5
        return u

    def split(self, points) -> dict:
        """``{organ: points[slice]}`` for an (N, 2) array or tensor in node order."""
        if len(points) != self.num_nodes:
            raise ValueError(f"expected {self.num_nodes} points for this template, got {len(points)}")
        return {name: points[self.slice(name)] for name in self.names}


def template_from_card(card: ModelCard) -> GraphTemplate:
    """The card's landmark template, checked against its labels (background + one label per organ)."""
    if not card.graph:
        raise MedsegError(f"model card {card.name!r} has no graph template", hint="set graph=((organ, count), ...)")
    try:
        template = GraphTemplate.from_pairs(card.graph)
    except ValueError as exc:
        raise MedsegError(f"model card {card.name!r}: {exc}") from exc
    if tuple(card.labels[1:]) != template.names:
        raise MedsegError(
            f"model card {card.name!r}: labels {card.labels} do not match the graph organs {template.names}",
            hint="pass labels=('background', *organs) together with graph=",
        )
    return template
