"""Import official STU-Net checkpoints (uni-medical/STU-Net) into :class:`medseg.models.stunet.STUNet`.

Two containers exist: nnU-Net v1 ``*.model`` (``torch.save`` of a dict whose ``state_dict`` holds the
weights, next to ``optimizer_state_dict``, ``plot_stuff``, ``best_stuff``, ``amp_grad_scaler``...) and
nnU-Net v2 ``*.pth`` (``network_weights`` next to ``optimizer_state``, ``init_args``, ``logging``...).
Both are read with ``weights_only=True`` plus a data-only allowlist (:mod:`medseg.models._checkpoint`).

Official parameter names, which our module reproduces::

    conv_blocks_context.{stage}.{block}.{conv1|norm1|conv2|norm2|conv3}.{weight|bias}
    upsample_layers.{u}.conv.{weight|bias}
    conv_blocks_localization.{u}.{block}.{conv1|norm1|conv2|norm2|conv3}.{weight|bias}
    seg_outputs.{u}.{weight|bias}

(``conv3`` is the 1x1x1 shortcut of the first block of a stage.)
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike
from typing import Any

import torch
from torch import nn

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.models._adapt import (
    LoadReport,
    apply_state,
    match_state_dict,
    raise_for_report,
)
from medseg.models._checkpoint import load_checkpoint, strip_key

logger = get_logger(__name__)

_BLOCK = r"(conv_blocks_context|conv_blocks_localization)\.\d+\.\d+\.(conv[123]|norm[12])\.(weight|bias)"
OFFICIAL_KEY = re.compile(rf"^({_BLOCK}|upsample_layers\.\d+\.conv\.(weight|bias)|seg_outputs\.\d+\.(weight|bias))$")
_SIZE_BY_C0 = {16: "S", 32: "B", 64: "L", 96: "H"}


def read_official_state(path: str | PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """The network tensors of an official file (names as stored) and the container kind."""
    obj = load_checkpoint(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("network_weights"), Mapping):
        kind, raw = "nnU-Net v2 checkpoint", obj["network_weights"]
    elif isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        kind, raw = "nnU-Net v1 checkpoint", obj["state_dict"]
    elif isinstance(obj, Mapping) and any(isinstance(v, torch.Tensor) for v in obj.values()):
        kind, raw = "bare state dict", obj
    else:
        top = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise MedsegError(f"not an nnU-Net/STU-Net checkpoint (top level: {top})", path=path,
                          hint="expected a dict with 'state_dict' (v1 .model) or 'network_weights' (v2 .pth)")
    state = {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    return state, kind


def map_official_names(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Official key -> our key: wrapper prefixes (``module.``) removed, the rest checked against the official
    pattern and kept as is (our module uses the official names).

    Returns the mapped tensors and the file keys that do not follow STU-Net naming at all.
    """
    mapped, foreign = {}, []
    for key, value in state.items():
        ours = strip_key(key)
        if OFFICIAL_KEY.match(ours):
            mapped[ours] = value
        else:
            foreign.append(key)
    return mapped, foreign


def describe_stunet_state(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Infer width, blocks per stage, stages, input channels and classes from official tensors."""
    info: dict[str, Any] = {}
    stem = state.get("conv_blocks_context.0.0.conv1.weight")
    if stem is not None:
        info["c0"], info["in_channels"] = int(stem.shape[0]), int(stem.shape[1])
        info["size"] = _SIZE_BY_C0.get(info["c0"], "custom")
    stages = {int(k.split(".")[1]) for k in state if k.startswith("conv_blocks_context.")}
    blocks = {int(k.split(".")[2]) for k in state if k.startswith("conv_blocks_context.0.")}
    if stages:
        info["stages"] = max(stages) + 1
    if blocks:
        info["blocks_per_stage"] = max(blocks) + 1
    heads = [v for k, v in state.items() if k.startswith("seg_outputs.") and k.endswith(".weight")]
    if heads:
        info["num_classes"] = int(heads[0].shape[0])
    return info


def _model_config(model: nn.Module) -> dict[str, Any]:
    return describe_stunet_state(model.state_dict())


def _wrong_arch_hint(file_info: Mapping[str, Any], model_info: Mapping[str, Any]) -> str:
    diffs = [f"{k} {file_info[k]} in file vs {model_info.get(k)} in model"
             for k in ("size", "c0", "blocks_per_stage", "stages", "in_channels", "num_classes")
             if k in file_info and file_info[k] != model_info.get(k)]
    if not diffs:
        return "the file and the model differ in some tensor shapes"
    return ("; ".join(diffs) + ". Build the matching size (stunet_s/b/l/h) or, for other classes/channels, "
            "use reinit_heads=True / tile_input_channels=True")


def load_official_stunet(
    model: nn.Module,
    path: str | PathLike,
    *,
    reinit_heads: bool = False,
    tile_input_channels: bool = False,
) -> LoadReport:
    """Load an official STU-Net ``.model`` / ``.pth`` file into ``model`` (a :class:`STUNet`).

    Every tensor is matched by its official name and checked for shape; anything unmatched is reported,
    and a checkpoint of another architecture or size fails with a :class:`MedsegError` that says how the
    file differs (e.g. "size B in file vs S in model").

    Args:
        reinit_heads: keep fresh ``seg_outputs`` (fine-tuning to a new label set, STU-Net's recipe).
        tile_input_channels: repeat the stem weights for a model with more input channels.

    Returns:
        the :class:`LoadReport` (loaded / adapted / re-initialised / unused tensors).
    """
    state, kind = read_official_state(path)
    mapped, foreign = map_official_names(state)
    if not mapped:
        raise MedsegError(
            f"{kind} holds no STU-Net tensors (e.g. {', '.join(list(state)[:3])})", path=path,
            hint="this is a checkpoint of another architecture (e.g. a plain nnU-Net: "
                 "conv_blocks_context.0.blocks.0.conv...); STU-Net files come from STUNetTrainer_*",
        )
    heads = tuple(getattr(model, "head_prefixes", ("seg_outputs.",))) if reinit_heads else ()
    stems = tuple(getattr(model, "stem_keys", ())) if tile_input_channels else ()
    tensors, report = match_state_dict(mapped, model, reinit_prefixes=heads, tile_keys=stems)
    report.unused = sorted(set(report.unused) | set(foreign))
    report.source = str(path)
    if report.missing or report.mismatched:
        hint = _wrong_arch_hint(describe_stunet_state(mapped), _model_config(model))
        raise_for_report(report, what=f"{type(model).__name__} ({kind})", source=path, hint=hint)
    apply_state(model, tensors)
    logger.info("imported %s %s: %s", kind, path, report.summary())
    if foreign:
        logger.warning("%s: %d tensors with non-STU-Net names were ignored (e.g. %s)", path, len(foreign),
                       ", ".join(foreign[:3]))
    return report
