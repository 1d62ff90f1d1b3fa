"""Training and loading DeepOrgan's regional stage (:mod:`.superpixels`) for a cascade recipe.

The ``[regional]`` table of a cascade recipe (used when ``[cascade] superpixels = true``) sets the SLIC
superpixels, the zoom-out boxes and the small ConvNet's training. The training samples are stage 2's ROI
crops (image + out-of-fold stage-1 prior channels, the same ROI rule as stage 2): every superpixel of a crop
becomes one sample, its zoom-out boxes the input and the fraction of the organ's voxels inside it the soft
target (cross-entropy). Organ superpixels are rare in a ROI, so by default half of each batch is drawn from
them (``balance``, as DeepOrgan balanced its training boxes; 0 samples uniformly). The model is
written to ``<regional output>/best.pt`` (the lowest validation loss when there are validation crops, else
the last iterate) with the settings inference needs; :func:`load_regional` rebuilds the
:class:`~.superpixels.RegionalStage` from it.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from medseg.cascade.superpixels import (
    RegionalStage,
    ZoomOutNet,
    superpixels,
    zoom_out_boxes,
)
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger

log = get_logger(__name__)


@dataclass
class RegionalConfig:
    """``[regional]`` settings; defaults follow DeepOrgan's setup scaled to 3D ROIs."""

    n_segments: int = 200              # SLIC superpixels per ROI
    compactness: float = 0.1           # SLIC: low = follow intensity edges, high = cubes
    scales: list[float] = field(default_factory=lambda: [1.0, 2.0, 3.0])   # zoom-out box sizes (x superpixel box)
    patch: int = 16                    # each box resized to patch^3
    width: int = 16                    # ZoomOutNet channels
    iterations: int = 500              # optimiser steps
    batch_size: int = 64               # superpixels per step
    lr: float = 1e-3                   # Adam
    balance: float = 0.5               # share of each batch drawn from organ superpixels (fraction >= 0.5);
                                       # 0 = uniform (calibrated but few organ samples in a large ROI)
    seed: int = 0
    output: str = ""                   # default: "regional" beside stage 2's output folder

    def settings(self) -> dict:
        """What defines the trained model (not where it is written)."""
        d = dataclasses.asdict(self)
        d.pop("output")
        return d


def regional_config_from_dict(raw: dict, *, source: str | PathLike | None = None) -> RegionalConfig:
    """Validate a ``[regional]`` table: unknown keys get a "did you mean", numbers are checked."""
    cfg = RegionalConfig()
    known = {f.name for f in dataclasses.fields(RegionalConfig)}
    for key, value in raw.items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            raise MedsegError(f"unknown key regional.{key}", path=source,
                              hint=f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known))}")
        default = getattr(cfg, key)
        try:
            if isinstance(default, list):
                value = [float(v) for v in (value if isinstance(value, list) else [value])]
            elif isinstance(default, int):
                value = int(value)
            elif isinstance(default, float):
                value = float(value)
            else:
                value = str(value)
        except (TypeError, ValueError):
            raise MedsegError(f"regional.{key} must be like {default!r}, got {value!r}", path=source) from None
        setattr(cfg, key, value)
    positive = ("n_segments", "patch", "width", "iterations", "batch_size", "lr")
    bad = [k for k in positive if getattr(cfg, k) <= 0] + (["scales"] if not cfg.scales or min(cfg.scales) <= 0 else [])
    bad += ["balance"] if not 0.0 <= cfg.balance < 1.0 else []
    if bad:
        raise MedsegError(f"invalid regional settings {bad}", path=source,
                          hint="sizes, iterations and lr must be positive; 0 <= balance < 1")
    if cfg.patch < 4:
        raise MedsegError(f"regional.patch must be >= 4, got {cfg.patch}", path=source)
    return cfg


def regional_output(cfg: RegionalConfig, stage2_output: str | PathLike) -> Path:
    """The regional stage's folder: ``[regional] output`` or ``regional/`` beside stage 2's output."""
    return Path(cfg.output) if cfg.output else Path(stage2_output).parent / "regional"


def regional_samples(image: torch.Tensor, label: torch.Tensor, organ: int,
                     cfg: RegionalConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Superpixels of one ROI crop ``image`` (C, *roi) as training samples: their zoom-out boxes
    ``(N, C * len(scales), p, p, p)`` and the fraction of label ``organ`` inside each (N,)."""
    sp = superpixels(image[0].numpy(), cfg.n_segments, cfg.compactness)
    boxes, ids = zoom_out_boxes(image.float(), sp, cfg.scales, cfg.patch)
    inside = (torch.as_tensor(label).reshape(sp.shape) == organ).numpy().astype(np.float32)
    frac = ndimage.mean(inside, sp, ids) if len(ids) else np.zeros(0)
    return boxes, torch.as_tensor(np.asarray(frac, np.float32))


def _stack(crops: Sequence[tuple[torch.Tensor, torch.Tensor, int]], cfg: RegionalConfig):
    parts = [regional_samples(img, lab, k, cfg) for img, lab, k in crops]
    if not parts:
        return None
    return torch.cat([b for b, _ in parts]), torch.cat([t for _, t in parts])


def _loss(net: torch.nn.Module, boxes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the soft target (organ fraction)."""
    return F.cross_entropy(net(boxes), torch.stack([1.0 - target, target], 1))


def fit_regional(train: Sequence[tuple[torch.Tensor, torch.Tensor, int]], cfg: RegionalConfig, out: str | PathLike,
                 *, val: Sequence[tuple[torch.Tensor, torch.Tensor, int]] = (), labels: Sequence[str] = (),
                 device: str | torch.device = "cpu") -> Path:
    """Train a :class:`ZoomOutNet` on ``(crop image, crop label, organ index)`` triples; returns ``best.pt``.

    Written atomically with ``medseg.training.checkpoint.save_checkpoint``: ``model`` (state dict),
    ``settings`` (:meth:`RegionalConfig.settings`), ``in_channels``, ``labels`` and the loss ``history``."""
    from medseg.training.checkpoint import save_checkpoint

    samples = _stack(train, cfg)
    if samples is None or len(samples[1]) == 0:
        raise MedsegError("no superpixel to train the regional stage on", hint="check [cascade] targets")
    boxes, target = samples
    held = _stack(val, cfg)
    in_channels = int(train[0][0].shape[0])
    device = torch.device(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    net = ZoomOutNet(in_channels, len(cfg.scales), cfg.width).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    log.info("regional stage: %d superpixels from %d crops (organ fraction %.2f), %d iterations",
             len(target), len(train), float(target.mean()), cfg.iterations)
    every = max(1, cfg.iterations // 10)
    pos, neg = torch.nonzero(target >= 0.5)[:, 0], torch.nonzero(target < 0.5)[:, 0]
    n_pos = round(cfg.balance * cfg.batch_size) if len(pos) and len(neg) else 0
    best_loss, best_state, history = float("inf"), None, []
    for it in range(cfg.iterations):
        net.train()
        if n_pos:
            idx = torch.cat([pos[torch.randint(len(pos), (n_pos,), generator=gen)],
                             neg[torch.randint(len(neg), (cfg.batch_size - n_pos,), generator=gen)]])
        else:
            idx = torch.randint(len(target), (min(cfg.batch_size, len(target)),), generator=gen)
        loss = _loss(net, boxes[idx].to(device), target[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (it + 1) % every == 0 or it + 1 == cfg.iterations:
            record = {"iteration": it + 1, "train_loss": loss.item()}
            if held is not None and len(held[1]):
                net.eval()
                with torch.inference_mode():
                    record["val_loss"] = float(_loss(net, held[0].to(device), held[1].to(device)))
                if record["val_loss"] < best_loss:
                    best_loss, best_state = record["val_loss"], copy.deepcopy(net.state_dict())
            history.append(record)
            log.info("regional stage: %s", record)
    state = best_state or net.state_dict()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    best = out / "best.pt"
    save_checkpoint(best, model={k: v.detach().cpu() for k, v in state.items()}, settings=cfg.settings(),
                    in_channels=in_channels, labels=list(labels), history=history)
    return best


def load_regional(path: str | PathLike, in_channels: int | None = None) -> RegionalStage:
    """The :class:`RegionalStage` saved by :func:`fit_regional` (weights-only loading); ``in_channels``: what
    the cascade feeds it (stage 2's input channels), checked against the checkpoint."""
    from medseg.training.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    if not isinstance(state, dict) or not {"model", "settings", "in_channels"} <= set(state):
        raise MedsegError("not a regional-stage checkpoint (needs model, settings, in_channels)", path=path,
                          hint="train it with medseg train <cascade recipe> ([cascade] superpixels = true)")
    if in_channels is not None and int(state["in_channels"]) != in_channels:
        raise MedsegError(f"regional stage takes {state['in_channels']} channels, the cascade feeds {in_channels}",
                          path=path, hint="retrain the regional stage with this cascade's stage 2")
    s = state["settings"]
    net = ZoomOutNet(int(state["in_channels"]), len(s["scales"]), int(s["width"]))
    net.load_state_dict(state["model"])
    return RegionalStage(net, n_segments=int(s["n_segments"]), compactness=float(s["compactness"]),
                         scales=tuple(s["scales"]), patch=int(s["patch"]))
