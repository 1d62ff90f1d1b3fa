"""Load nnU-Net v2 fold checkpoints safely and check them against the plans.

The ``.pth`` files are ``torch.save`` pickles (weights, optimizer state, logging with numpy scalars,
``init_args``, ``trainer_name``, ``inference_allowed_mirroring_axes``). nnU-Net loads them with
full unpickling; medseg uses ``weights_only=True`` and its data-only allowlist
(:func:`medseg.models._checkpoint.load_checkpoint`), so a fold file cannot run code. Every fold file's
sha256 can be pinned and verified before it is loaded.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from medseg.core.errors import MedsegError
from medseg.models._checkpoint import load_checkpoint, strip_prefix

# trainers whose network is the one the plans describe (variants that change the architecture are refused)
KNOWN_TRAINER_PREFIXES = ("nnUNetTrainer",)
ARCHITECTURE_TRAINERS = ("BN", "NoDeepSupervision", "Primus", "MedNeXt", "SwinUNETR", "UMamba", "STUNet",
                         "ResEncUNet_", "SegResNet", "UNETR", "nnFormer")


@dataclass
class Fold:
    """One fold's weights and the metadata medseg uses from it."""

    name: str
    path: Path
    weights: dict[str, torch.Tensor]
    trainer: str
    configuration: str | None
    mirror_axes: tuple[int, ...] | None


def check_trainer(trainer: str, path: Path) -> None:
    """Refuse trainer classes that build another network than the plans describe."""
    if not trainer.startswith(KNOWN_TRAINER_PREFIXES):
        raise MedsegError(f"unknown trainer class {trainer!r}", path=path,
                          hint="medseg runs folders trained with nnUNetTrainer and its training-schedule variants")
    if any(tag in trainer for tag in ARCHITECTURE_TRAINERS):
        raise MedsegError(f"trainer {trainer!r} changes the network architecture; medseg does not rebuild it",
                          path=path, hint="medseg rebuilds the plans' PlainConvUNet / ResidualEncoderUNet only")


def load_fold(name: str, path: Path, sha256: str | None = None) -> Fold:
    """Load ``fold_<name>``'s checkpoint (weights only) after checking its pinned sha256, if given."""
    if sha256:
        from medseg.core.hashing import sha256_file_once

        actual = sha256_file_once(path)
        if actual != sha256:
            raise MedsegError(f"sha256 mismatch (pinned {sha256[:12]}..., file {actual[:12]}...)", path=path,
                              hint="the fold file changed since `medseg models import-folder`; import it again")
    obj = load_checkpoint(path)
    if not isinstance(obj, Mapping) or not isinstance(obj.get("network_weights"), Mapping):
        raise MedsegError("not an nnU-Net v2 checkpoint (no 'network_weights')", path=path)
    trainer = str(obj.get("trainer_name", ""))
    check_trainer(trainer, path)
    init = obj.get("init_args") if isinstance(obj.get("init_args"), Mapping) else {}
    axes = obj.get("inference_allowed_mirroring_axes")
    weights = strip_prefix({str(k): v for k, v in obj["network_weights"].items() if isinstance(v, torch.Tensor)})
    return Fold(name, path, weights, trainer, init.get("configuration"),
                None if axes is None else tuple(int(a) for a in axes))


def loaded_network(build: Callable[[], nn.Module], fold: Fold) -> nn.Module:
    """``build()``'s network holding ``fold``'s weights (strictly matched). It is built on the meta device and
    takes the fold's tensors as its parameters: no random initialisation that the weights then overwrite, and
    no second copy of them (0.6 CPU-s and 120 MB for nnU-Net's default 3d_fullres CT network). A network with
    tensors outside its state_dict (none of the plans' networks) is built and loaded the ordinary way."""
    with torch.device("meta"):
        network = build()
    strict_load(network, fold, assign=True)
    if any(t.is_meta for t in (*network.parameters(), *network.buffers())):
        network = build()
        strict_load(network, fold)
    return network


def strict_load(network: nn.Module, fold: Fold, *, assign: bool = False) -> None:
    """Load ``fold``'s weights into ``network``; every tensor must match by name and shape. ``assign``: the
    network's parameters become the fold's tensors (in the network's dtypes, contiguous: what a copy gives)."""
    own = network.state_dict()
    missing = [k for k in own if k not in fold.weights]
    unexpected = [k for k in fold.weights if k not in own]
    wrong = [f"{k} {tuple(fold.weights[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in fold.weights and fold.weights[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (first: {wrong[0]})")
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
        raise MedsegError("fold weights do not match the network the plans describe: " + "; ".join(parts),
                          path=fold.path, hint="the fold was trained with other plans or another architecture")
    weights = {k: v.to(own[k].dtype).contiguous() for k, v in fold.weights.items()} if assign else fold.weights
    network.load_state_dict(weights, strict=True, assign=assign)
