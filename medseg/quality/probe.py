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
        "boundary_entropy", "gradient_0", "gradient_1", "gradient_2", "mass")
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
        self.patterns: torch.Tensor | None = None   # (K, 2 ** (1 + P)) weight of each agreement pattern
        self._gauss: torch.Tensor | None = None

    def wrap(self, net: Network, options: Any) -> tuple[Network, Any]:
        """``(network, engine options)`` where the network runs ``options.mirror_axes`` TTA itself and
        observes each batch; the returned options have no mirroring left for the engine."""
        sets = flip_sets(options.mirror_axes) if options.mirror_axes else [()]
        self.passes = len(sets)

        def run(x: torch.Tensor) -> torch.Tensor:
            labels: list[torch.Tensor] = []
            keep = (lambda out: labels.append(_argmax_labels(out))) if len(sets) > 1 else None
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
        labels = _argmax_labels(logits).long() if k <= 16 else probs.argmax(1)
        conf = probs.amax(1) if k > 16 else _plane_max(probs)
        entropy = (probs * probs.clamp_min(1e-8).log()).sum(1).mul_(-1.0 / math.log(max(k, 2)))
        mass = (probs * self._gauss).sum(dim=tuple(i for i in range(probs.ndim) if i != 1))   # (K,)
        del probs
        w = self._gauss.expand_as(conf).reshape(-1)
        boundary = _boundary(labels.to(torch.uint8) if k <= 255 else labels).reshape(-1).float()
        image = x[:, 0].float().to(logits.device)
        gradient = axis_gradient_energy(image)
        intensity = image.reshape(-1)
        conf, entropy = conf.reshape(-1), entropy.reshape(-1)
        flat = labels.reshape(-1)
        wc, wb = w * conf, w * boundary
        wi = w * intensity
        grads = [w * gradient[a].reshape(-1) for a in range(3)]
        columns = torch.stack([w, wc, w * entropy, wb, wb * conf, wi, wi * intensity, wb * entropy, *grads], 1)
        per_class = torch.zeros((k, columns.shape[1]), dtype=torch.float32, device=logits.device)
        per_class.index_add_(0, flat, columns)
        self.sums[: columns.shape[1]] += per_class.T.double().cpu()
        self.sums[_ROW["mass"]] += mass.double().cpu()
        if pass_labels:   # which of (TTA labels, each pass) say class c, as bits of a code: a histogram per class
            rows = torch.stack([flat.to(torch.uint8), *[p.reshape(-1).to(flat.device) for p in pass_labels]])
            bins = 1 << rows.shape[0]
            hist = torch.stack([torch.zeros(bins, dtype=w.dtype, device=w.device)] +   # background: not reported
                               [torch.bincount(_pattern(rows, c), weights=w, minlength=bins) for c in range(1, k)])
            hist = hist.double().cpu()
            self.patterns = hist if self.patterns is None else self.patterns + hist

    def signals(self) -> dict[int, dict[str, float | None]]:
        """Per label value (>= 1): ``tta_dice`` (each pass against the TTA labels), ``tta_dice_min`` and
        ``tta_dice_pairs`` (least and mean Dice between two passes), ``soft_dice`` (expected Dice of the
        probabilities against their own argmax), ``confidence``, ``boundary_confidence``, ``entropy``,
        ``boundary_entropy``, ``intensity_mean``, ``intensity_std``, ``gradient_0..2`` (mean squared
        difference of the normalised input to its neighbours along each axis, inside the structure);
        None where the structure is absent."""
        s = {name: self.sums[i] for name, i in _ROW.items()}
        out: dict[int, dict[str, float | None]] = {}
        for c in range(1, self.channels):
            weight = float(s["weight"][c])
            if weight <= 0:
                out[c] = dict.fromkeys(SIGNALS)
                continue
            tta = tta_min = tta_pairs = None
            if self.patterns is not None and self.passes > 1:
                m = _overlaps(self.patterns[c])
                size = m.diagonal()
                tta = float(2.0 * m[0, 1:].sum() / (size[1:] + size[0]).sum().clamp_min(1e-12))
                i, j = torch.triu_indices(m.shape[0] - 1, m.shape[0] - 1, 1) + 1
                denom = size[i] + size[j]
                dice = torch.where(denom > 0, 2.0 * m[i, j] / denom.clamp_min(1e-12), torch.ones_like(denom))
                tta_min, tta_pairs = float(dice.min()), float(dice.mean())
            mean = float(s["intensity"][c]) / weight
            var = max(float(s["intensity_sq"][c]) / weight - mean * mean, 0.0)
            bw = float(s["boundary"][c])
            out[c] = {
                "tta_dice": tta,
                "confidence": float(s["confidence"][c]) / weight,
                "boundary_confidence": float(s["boundary_confidence"][c]) / bw if bw > 0 else None,
                "entropy": float(s["entropy"][c]) / weight,
                "intensity_mean": mean,
                "intensity_std": math.sqrt(var),
                "tta_dice_min": tta_min,
                "tta_dice_pairs": tta_pairs,
                "soft_dice": 2.0 * float(s["confidence"][c]) / (float(s["mass"][c]) + weight),
                "boundary_entropy": float(s["boundary_entropy"][c]) / bw if bw > 0 else None,
                **{f"gradient_{a}": float(s[f"gradient_{a}"][c]) / weight for a in range(3)},
            }
        return out


#: the names :meth:`QualityProbe.signals` gives every structure
SIGNALS = ("tta_dice", "confidence", "boundary_confidence", "entropy", "intensity_mean", "intensity_std",
           "tta_dice_min", "tta_dice_pairs", "soft_dice", "boundary_entropy", "gradient_0", "gradient_1",
           "gradient_2")


def _argmax_labels(logits: torch.Tensor) -> torch.Tensor:
    """``argmax(1)`` as uint8 (first maximum on ties), by comparing the few channel planes in turn: several
    times cheaper on a CPU than ``argmax`` over a short middle axis, and it runs once per TTA pass."""
    k = logits.shape[1]
    if k > 16:
        return logits.argmax(1).to(torch.uint8)
    best = logits[:, 0].clone()
    labels = torch.zeros(best.shape, dtype=torch.uint8, device=logits.device)
    for c in range(1, k):
        plane = logits[:, c]
        labels.masked_fill_(plane > best, c)
        torch.maximum(best, plane, out=best)
    return labels


def _plane_max(values: torch.Tensor) -> torch.Tensor:
    """``values.amax(1)`` by comparing the channel planes in turn (see :func:`_argmax_labels`)."""
    best = values[:, 0].clone()
    for c in range(1, values.shape[1]):
        torch.maximum(best, values[:, c], out=best)
    return best


def _pattern(rows: torch.Tensor, value: int) -> torch.Tensor:
    """Per voxel of ``rows`` ``(R, N)``, bit r set where row r holds ``value``."""
    bits = torch.tensor([1 << r for r in range(rows.shape[0])], dtype=torch.int32, device=rows.device)
    return ((rows == value).to(torch.int32) * bits[:, None]).sum(0)


def _overlaps(hist: torch.Tensor) -> torch.Tensor:
    """``(R, R)`` weighted overlap of every pair of rows (diagonal: each row's size) from the pattern histogram."""
    r = int(hist.numel()).bit_length() - 1
    bits = ((torch.arange(hist.numel())[:, None] >> torch.arange(r)) & 1).double()
    return bits.T @ (hist[:, None] * bits)


def axis_gradient_energy(image: torch.Tensor) -> torch.Tensor:
    """``(3, B, X, Y, Z)``: per voxel of ``(B, X, Y, Z)`` the mean squared difference to its neighbours along
    each spatial axis (edge voxels: their one neighbour). The same numbers for a window and a whole scan."""
    out = torch.zeros((3, *image.shape), dtype=torch.float32, device=image.device)
    for a in range(3):
        axis = a + 1
        n = image.shape[axis]
        if n < 2:
            continue
        d2 = (image.narrow(axis, 1, n - 1) - image.narrow(axis, 0, n - 1)).square()
        count = torch.full((n,), 2.0, device=image.device)
        count[0] = count[-1] = 1.0
        out[a].narrow(axis, 0, n - 1).add_(d2)
        out[a].narrow(axis, 1, n - 1).add_(d2)
        out[a].div_(count.view(*([1] * axis), n, *([1] * (image.ndim - axis - 1))))
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
