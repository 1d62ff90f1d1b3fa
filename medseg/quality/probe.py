"""Quality signals gathered inside the sliding-window engine, at the cost of a few reductions per window.

:class:`QualityProbe` takes over the mirroring TTA of a window batch (the same passes the engine would
run, one at a time) so it can see every pass before they are averaged. Per window it keeps only per-class
sums, Gaussian-weighted like the stitcher's blend (overlapping windows count in proportion to their
weight): voxels, max probability, normalised entropy, boundary voxels and their confidence, input
intensity, and for each extra pass the overlap of its labels with the TTA labels (a Dice per structure
between the passes and their mean). Memory: one uint8 label map per pass of one window batch.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch

from medseg.inference.tta import flip_sets, mirrored
from medseg.inference.windows import gaussian_weights

Network = Callable[[torch.Tensor], torch.Tensor]

#: per-class sums kept by the probe (rows of :attr:`QualityProbe.sums`)
SUMS = ("weight", "confidence", "entropy", "boundary", "boundary_confidence", "intensity", "intensity_sq",
        "agree_inter", "agree_size")
_ROW = {name: i for i, name in enumerate(SUMS)}


class QualityProbe:
    """Accumulate per-structure sums over every window of one case (softmax models).

    Args:
        channels: output channels (= label values of a softmax model).
        roi: window size, for the Gaussian weights.
    """

    def __init__(self, channels: int, roi: Sequence[int]) -> None:
        self.channels = int(channels)
        self.roi = tuple(int(r) for r in roi)
        self.sums = torch.zeros((len(SUMS), self.channels), dtype=torch.float64)
        self.passes = 1
        self._gauss: torch.Tensor | None = None

    def wrap(self, net: Network, options: Any) -> tuple[Network, Any]:
        """``(network, engine options)`` where the network runs ``options.mirror_axes`` TTA itself and
        observes each batch; the returned options have no mirroring left for the engine."""
        sets = flip_sets(options.mirror_axes) if options.mirror_axes else [()]
        self.passes = len(sets)

        def run(x: torch.Tensor) -> torch.Tensor:
            labels: list[torch.Tensor] = []
            keep = (lambda out: labels.append(out.argmax(1).to(torch.uint8))) if len(sets) > 1 else None
            mean = mirrored(net, x, options.mirror_axes or (), on_pass=keep)
            self.observe(x, mean, labels)
            return mean

        return run, replace(options, mirror_axes=())

    @torch.no_grad()
    def observe(self, x: torch.Tensor, logits: torch.Tensor, pass_labels: Sequence[torch.Tensor] = ()) -> None:
        """Add one window batch: input ``(B, C, *roi)``, TTA-mean logits ``(B, K, *roi)``, per-pass labels."""
        if self._gauss is None or self._gauss.device != logits.device:
            self._gauss = gaussian_weights(self.roi, logits.device)
        k = self.channels
        probs = torch.softmax(logits.float(), 1)
        conf, labels = probs.max(1)
        entropy = (probs * probs.clamp_min(1e-8).log()).sum(1).mul_(-1.0 / math.log(max(k, 2)))
        del probs
        w = self._gauss.expand_as(conf).reshape(-1)
        boundary = _boundary(labels).reshape(-1).float()
        intensity = x[:, 0].float().to(logits.device).reshape(-1)
        conf, entropy = conf.reshape(-1), entropy.reshape(-1)
        flat = labels.reshape(-1)
        wc, wb = w * conf, w * boundary
        wi = w * intensity
        columns = torch.stack([w, wc, w * entropy, wb, wb * conf, wi, wi * intensity], 1)  # order of SUMS[:7]
        per_class = torch.zeros((k, columns.shape[1]), dtype=torch.float32, device=logits.device)
        per_class.index_add_(0, flat, columns)
        self.sums[:7] += per_class.T.double().cpu()
        if pass_labels:
            others = torch.stack([p.reshape(-1) for p in pass_labels]).to(flat.device).long()   # (P, N)
            same = (others == flat).float()
            inter = torch.zeros(k, dtype=torch.float32, device=flat.device)
            inter.index_add_(0, flat.repeat(len(pass_labels)), (same * w).reshape(-1))
            size = torch.zeros(k, dtype=torch.float32, device=flat.device)
            size.index_add_(0, others.reshape(-1), w.repeat(len(pass_labels)))
            size += per_class[:, 0] * len(pass_labels)
            self.sums[_ROW["agree_inter"]] += inter.double().cpu()
            self.sums[_ROW["agree_size"]] += size.double().cpu()

    def signals(self) -> dict[int, dict[str, float | None]]:
        """Per label value (>= 1): ``tta_dice``, ``confidence``, ``boundary_confidence``, ``entropy``,
        ``intensity_mean``, ``intensity_std`` (None where the structure is absent)."""
        s = {name: self.sums[i] for name, i in _ROW.items()}
        out: dict[int, dict[str, float | None]] = {}
        for c in range(1, self.channels):
            weight = float(s["weight"][c])
            if weight <= 0:
                out[c] = {"tta_dice": None, "confidence": None, "boundary_confidence": None, "entropy": None,
                          "intensity_mean": None, "intensity_std": None}
                continue
            mean = float(s["intensity"][c]) / weight
            var = max(float(s["intensity_sq"][c]) / weight - mean * mean, 0.0)
            bw = float(s["boundary"][c])
            size = float(s["agree_size"][c])
            out[c] = {
                "tta_dice": (2.0 * float(s["agree_inter"][c]) / size) if self.passes > 1 and size > 0 else None,
                "confidence": float(s["confidence"][c]) / weight,
                "boundary_confidence": float(s["boundary_confidence"][c]) / bw if bw > 0 else None,
                "entropy": float(s["entropy"][c]) / weight,
                "intensity_mean": mean,
                "intensity_std": math.sqrt(var),
            }
        return out


def _boundary(labels: torch.Tensor) -> torch.Tensor:
    """Voxels of ``(B, *S)`` labels with a face neighbour of another label (window edges are not boundary)."""
    edge = torch.zeros_like(labels, dtype=torch.bool)
    for axis in range(1, labels.ndim):
        n = labels.shape[axis]
        if n < 2:
            continue
        a, b = labels.narrow(axis, 0, n - 1), labels.narrow(axis, 1, n - 1)
        diff = a != b
        edge.narrow(axis, 0, n - 1).logical_or_(diff)
        edge.narrow(axis, 1, n - 1).logical_or_(diff)
    return edge
