"""One output-head contract per kind of model: the only place that knows what a model's output channels mean.

The card declares the kind (``activation`` plus the output keys of ``postprocess``); :func:`head_for` turns it
into an :class:`OutputHead` that the training loop, validation, the stitcher and the predictor all call:

===================  ==========================  =====================================  =====================
kind                 card                        labels from outputs                    training loss
===================  ==========================  =====================================  =====================
softmax classes      ``softmax``                 argmax (channel = label value)         Dice + CE
sigmoid classes      ``sigmoid``                 1 + best channel above the threshold   Dice + BCE
sigmoid regions      ``sigmoid`` + label_values  paint each region above the threshold  Dice + BCE on regions
                                                 in order (largest first, BraTS)
SAUNA regression     ``regression`` + sauna      tanh -> p = (y + 1) / 2 > threshold    SAUNA (soft targets)
graph landmarks      ``graph``                   contours filled into a mask            landmark MSE + KL
===================  ==========================  =====================================  =====================

nnU-Net picks Dice+CE for mutually exclusive labels and Dice+BCE for (possibly overlapping) regions; the
same rule follows from the card here. Whatever the training-mode output looks like (a tensor, a
deep-supervision tuple, a dict with ``predictions`` and ``aux_loss``), :class:`TrainLoss` unpacks it
through :func:`medseg.models.unpack_train_output`, so no trainer branches on the model.

Labels are computed from Gaussian-weighted *sums* of window outputs (the stitcher never divides unless it
must): every class shares the same weight sum per voxel, so argmax and the sign test need no
normalisation; a threshold other than 0.5 compares ``sum > logit(t) x weight sum``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from medseg.core.card import ModelCard, Postprocess
from medseg.models._outputs import unpack_train_output

Classes = tuple[tuple[str, frozenset[int]], ...]


class OutputHead:
    """What a model's output channels mean. Subclasses fill in the kind-specific parts."""

    kind: ClassVar[str] = ""
    dense: ClassVar[bool] = True          # outputs are per-voxel maps (not landmarks)
    uses_threshold: ClassVar[bool] = False
    soft_output: ClassVar[bool] = False   # the stitched output is a soft map thresholded on the input grid

    def __init__(self, card: ModelCard) -> None:
        self.card = card
        self.channels = int(card.out_channels)

    # ---------------------------------------------------------------------------------------- labels
    @property
    def label_names(self) -> tuple[str, ...]:
        """Class name per label value (index = value, 0 = background)."""
        return tuple(self.card.labels)

    def fit_labels(self, names: Sequence[str]) -> dict[str, Any]:
        """Card changes that give this head one output per label of a dataset (``names[0]`` the background,
        index = label value); empty where outputs are not one per label (regions, SAUNA, landmarks)."""
        return {}

    @property
    def top_label(self) -> int:
        """The largest label value the head can produce."""
        return len(self.label_names) - 1

    @property
    def label_dtype(self) -> torch.dtype:
        """The smallest integer dtype holding every label value."""
        return torch.uint8 if self.top_label <= 255 else torch.int16

    def classes(self) -> Classes:
        """(name, label values) per scored structure: what validation Dice is computed on."""
        return tuple((self.label_names[v], frozenset({v})) for v in range(1, len(self.label_names)))

    @property
    def default_threshold(self) -> float:
        return 0.5

    # ------------------------------------------------------------------------------ decoding (inference)
    def window_output(self, logits: torch.Tensor) -> torch.Tensor:
        """What the stitcher sums per window (logits; SAUNA: the signed map)."""
        return logits

    def needs_weights(self, threshold: float, probabilities: bool) -> bool:
        """Whether the stitcher must keep the Gaussian weight sum per voxel."""
        return probabilities

    def decide(self, sums: torch.Tensor, weight: torch.Tensor | None, threshold: float) -> torch.Tensor:
        """Labels ``(*S)`` from Gaussian-weighted window-output sums ``(C, *S)`` (and their weight sum)."""
        raise NotImplementedError

    def probabilities(self, mean: torch.Tensor) -> torch.Tensor:
        """Per-channel probabilities from mean window outputs ``(C, *S)``."""
        raise NotImplementedError

    def finalize(self, sums: torch.Tensor, weight: torch.Tensor | None, threshold: float,
                 probabilities: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Labels and (if asked) float probabilities of one stitched cell."""
        labels = self.decide(sums, weight, threshold).to(self.label_dtype)
        if not probabilities or weight is None:
            return labels, None
        return labels, self.probabilities(sums.float().div_(weight.float()))

    def decode(self, logits: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
        """Raw network logits ``(N, C, *S)`` -> label maps ``(N, *S)`` (validation uses this)."""
        t = self.default_threshold if threshold is None else threshold
        outs = self.window_output(logits.float())
        return torch.stack([self.decide(o, torch.ones_like(o[0]), t) for o in outs]).long()

    # -------------------------------------------------------------------------------------- training
    def target(self, label: torch.Tensor) -> torch.Tensor:
        """The loss target for integer labels ``(N, 1, *S)``."""
        return label

    def segmentation_loss(self) -> nn.Module:
        """The per-output loss ``loss(logits, target)``."""
        raise NotImplementedError

    def loss(self) -> TrainLoss:
        """The full training loss on the model's raw training-mode output and integer labels."""
        return TrainLoss(self.segmentation_loss(), self.target)


# --------------------------------------------------------------------------------------------- softmax
class SoftmaxHead(OutputHead):
    """Mutually exclusive classes, channel ``c`` = label value ``c`` (``labels[0]`` the background)."""

    kind = "softmax"

    def fit_labels(self, names: Sequence[str]) -> dict[str, Any]:
        return {"labels": names, "out_channels": len(names)}

    def decide(self, sums, weight, threshold):
        return _argmax_channels(sums)

    def probabilities(self, mean):
        return torch.softmax(mean, 0)

    def segmentation_loss(self) -> nn.Module:
        from medseg.training.losses import DiceCELoss

        return DiceCELoss()


# --------------------------------------------------------------------------------------------- sigmoid
class SigmoidHead(OutputHead):
    """Independent sigmoid channels for exclusive classes: label ``c + 1`` = the most probable channel ``c``
    above the threshold, else 0 (one channel: ``p > threshold``)."""

    kind = "sigmoid"
    uses_threshold = True

    @property
    def label_names(self) -> tuple[str, ...]:
        return ("background", *self.card.labels)

    def fit_labels(self, names: Sequence[str]) -> dict[str, Any]:
        return {"labels": names[1:], "out_channels": len(names) - 1}   # one sigmoid channel per label

    @property
    def default_threshold(self) -> float:
        t = _post(self.card).threshold
        return 0.5 if t is None else float(t)

    def needs_weights(self, threshold, probabilities):
        return probabilities or _logit(threshold) != 0.0

    def _above(self, sums: torch.Tensor, weight: torch.Tensor | None, threshold: float) -> torch.Tensor:
        logit = _logit(threshold)
        if logit != 0.0:  # mean logit > logit(t)  <=>  weighted sum > logit(t) x weight sum
            assert weight is not None
            return sums.float() > weight.float() * logit
        return sums > 0

    def decide(self, sums, weight, threshold):
        best, index = sums.max(dim=0)
        return torch.where(self._above(best, weight, threshold), index + 1, torch.zeros_like(index))

    def probabilities(self, mean):
        return torch.sigmoid(mean)

    def target(self, label):
        values = torch.arange(1, self.channels + 1, device=label.device).view(1, -1, *[1] * (label.ndim - 2))
        return (label == values).float()

    def segmentation_loss(self) -> nn.Module:
        from medseg.training.losses import DiceBCELoss

        return DiceBCELoss()


class RegionHead(SigmoidHead):
    """Sigmoid channels for nested, overlapping regions (BraTS: whole tumour > tumour core > enhancing).

    ``postprocess.label_values`` maps each region (a channel name) to the label value it paints, in
    painting order, largest region first; region ``i`` contains the label values it and every later region
    paint (nnU-Net's ``regions_class_order``), which is also how its training target is built.
    """

    kind = "regions"

    def fit_labels(self, names: Sequence[str]) -> dict[str, Any]:
        return {}   # channels are the card's regions, not the dataset's label values

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self.order = tuple(_post(card).label_values.items())   # (region, value) in painting order
        values = [v for _, v in self.order]
        self.region_values = {name: frozenset(values[i:]) for i, (name, _) in enumerate(self.order)}

    @property
    def label_names(self) -> tuple[str, ...]:
        names = [f"label_{v}" for v in range(max(v for _, v in self.order) + 1)]
        names[0] = "background"
        for name, value in self.order:
            names[value] = name
        return tuple(names)

    def classes(self) -> Classes:
        return tuple((name, self.region_values[name]) for name in self.card.labels)

    def decide(self, sums, weight, threshold):
        labels = torch.zeros(sums.shape[1:], dtype=torch.int16, device=sums.device)
        for name, value in self.order:
            above = self._above(sums[self.card.labels.index(name)], weight, threshold)
            labels[above] = value
        return labels

    def target(self, label):
        channels = [torch.isin(label[:, 0], torch.tensor(sorted(self.region_values[name]), device=label.device))
                    for name in self.card.labels]
        return torch.stack(channels, 1).float()


# ------------------------------------------------------------------------------------------ regression
class RegressionHead(OutputHead):
    """SAUNA soft labels: one tanh channel per foreground class (``labels[0]`` the background); the
    stitcher averages the signed map y and keeps ``p = (y + 1) / 2``; labels are ``p > threshold``."""

    kind = "regression"
    uses_threshold = True
    soft_output = True

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        sauna = _post(card).sauna or {}
        self.activation = str(sauna.get("activation", "tanh"))
        self.sauna_threshold = float(sauna.get("threshold", 0.5))
        self.save_soft = bool(sauna.get("save_soft", False))

    @property
    def default_threshold(self) -> float:
        return self.sauna_threshold

    @property
    def top_label(self) -> int:
        return self.channels

    def window_output(self, logits):
        from medseg.transforms.sauna import sauna_activation

        return sauna_activation(logits, self.activation)

    def needs_weights(self, threshold, probabilities):
        return True

    def decide(self, sums, weight, threshold):
        soft = sums.float().div(weight.float()).add_(1.0).mul_(0.5).clamp_(0.0, 1.0)
        return threshold_labels(soft, threshold)

    def finalize(self, sums, weight, threshold, probabilities):
        """Regression keeps the soft map always (float16, as the predictor thresholds it again on the
        input grid)."""
        assert weight is not None
        soft = sums.float().div_(weight.float()).add_(1.0).mul_(0.5).clamp_(0.0, 1.0).to(torch.float16)
        return threshold_labels(soft, threshold, self.label_dtype), soft

    def probabilities(self, mean):
        return mean.add(1.0).mul_(0.5).clamp_(0.0, 1.0)

    def segmentation_loss(self) -> nn.Module:
        from medseg.training.sauna_losses import SaunaLoss

        return SaunaLoss(activation=self.activation)


# ----------------------------------------------------------------------------------------------- graph
class GraphHead(OutputHead):
    """Landmark contours (HybridGNet): node positions, turned into a mask by filling each organ's contour
    (:mod:`medseg.models._graph_predict`); trained by :mod:`medseg.training.graph`."""

    kind = "graph"
    dense = False

    def decide(self, sums, weight, threshold):
        raise TypeError(f"{self.card.name} outputs landmarks, not per-voxel maps")


# -------------------------------------------------------------------------------------------- factory
_KINDS: dict[str, type[OutputHead]] = {"softmax": SoftmaxHead, "sigmoid": SigmoidHead,
                                       "regression": RegressionHead, "graph": GraphHead}


def head_for(card: ModelCard) -> OutputHead:
    """The output head a card declares."""
    if card.activation == "sigmoid" and card.postprocess.get("label_values"):
        return RegionHead(card)
    try:
        return _KINDS[card.activation](card)
    except KeyError:
        raise ValueError(f"{card.name}: no output head for activation {card.activation!r}") from None


def as_head(head: OutputHead | str, channels: int) -> OutputHead:
    """``head`` itself, or a generic head for an activation name (engine callers without a card)."""
    if isinstance(head, OutputHead):
        return head
    if head == "softmax":
        labels: tuple[str, ...] = ("background", *(f"class_{c}" for c in range(1, channels)))
    elif head == "regression":
        labels = ("background", *(f"class_{c}" for c in range(1, channels + 1)))
    else:
        labels = tuple(f"class_{c}" for c in range(1, channels + 1))
    card = ModelCard(name=f"{head}_head", spatial_dims=3, in_channels=1, out_channels=channels, labels=labels,
                     activation=head)  # type: ignore[arg-type]
    return head_for(card)


# ---------------------------------------------------------------------------------------------- losses
class TrainLoss(nn.Module):
    """The total training loss of any zoo model (see :mod:`medseg.models._outputs`):

    * ``predictions`` (dict outputs, e.g. MSGA): each full-resolution map gets the loss with weight 1;
    * otherwise deep supervision with nnU-Net's weights, targets down-sampled by nearest neighbour
      (``soft=True``: area averaging, for soft-label regression) before ``to_target``;
    * plus ``aux_loss`` when the model returns one.
    """

    def __init__(self, loss: nn.Module, to_target: Callable[[torch.Tensor], torch.Tensor] | None = None, *,
                 soft: bool = False) -> None:
        super().__init__()
        self.seg = loss
        self.to_target = to_target or (lambda t: t)
        self.soft = soft

    def _at(self, target: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        if tuple(target.shape[2:]) != tuple(size):
            mode = "area" if self.soft else "nearest"
            resized = F.interpolate(target.float(), size=tuple(size), mode=mode)
            target = resized if self.soft else resized.long()
        return self.to_target(target)

    def forward(self, output: Any, target: torch.Tensor) -> torch.Tensor:
        out = unpack_train_output(output)
        if out.predictions:
            full = self._at(target, out.predictions[0].shape[2:])
            total = sum((self.seg(p, full) for p in out.predictions), out.logits.new_zeros((), dtype=torch.float32))
        else:
            total = out.logits.new_zeros((), dtype=torch.float32)
            for weight, logits in zip(deep_supervision_weights(len(out.deep_supervision)), out.deep_supervision):
                if weight == 0:  # keep the head in the graph (DDP needs a gradient for every parameter)
                    total = total + 0.0 * logits.sum()
                    continue
                total = total + weight * self.seg(logits, self._at(target, logits.shape[2:]))
        if out.aux_loss is not None:
            total = total + out.aux_loss
        return total


def deep_supervision_weights(n: int) -> list[float]:
    """nnU-Net's weights: 2^-i, the lowest resolution set to 0, normalised to sum to 1 (n=1 gives [1])."""
    if n == 1:
        return [1.0]
    weights = [2.0 ** -i for i in range(n)]
    weights[-1] = 0.0
    total = sum(weights)
    return [w / total for w in weights]


# --------------------------------------------------------------------------------------------- helpers
def _post(card: ModelCard) -> Postprocess:
    """The card's validated postprocess entry (a plain mapping is validated here)."""
    post = card.postprocess
    return post if isinstance(post, Postprocess) else Postprocess(post, owner=card.name)


def _logit(threshold: float) -> float:
    return math.log(threshold / (1.0 - threshold)) if 0.0 < threshold < 1.0 and threshold != 0.5 else 0.0


def threshold_labels(prob: torch.Tensor, threshold: float, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """Label map from per-class foreground probabilities ``(K, *S)``: ``c + 1`` for the most probable class
    c where its probability exceeds ``threshold``, else 0 (for K = 1: ``p > threshold``). The rule of
    :func:`medseg.transforms.sauna.soft_to_mask`, applied to probabilities instead of the signed map."""
    prob = prob.float()  # compare in float32 (as a float32 soft map file would be): a float16 threshold rounds
    if prob.shape[0] == 1:
        return (prob[0] > threshold).to(dtype)
    best, index = prob.max(dim=0)
    return torch.where(best > threshold, index + 1, torch.zeros_like(index)).to(dtype)


def _argmax_channels(sums: torch.Tensor) -> torch.Tensor:
    """argmax over dim 0 (first index wins ties); a running max over channels is ~2x faster on CPU."""
    if sums.device.type != "cpu" or sums.shape[0] <= 2:
        return sums.argmax(dim=0)
    best = sums[0].clone()
    index = torch.zeros(sums.shape[1:], dtype=torch.int16 if sums.shape[0] > 255 else torch.uint8)
    for c in range(1, sums.shape[0]):
        better = sums[c] > best
        torch.where(better, sums[c], best, out=best)
        index.masked_fill_(better, c)
    return index
