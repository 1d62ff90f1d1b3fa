"""Match a checkpoint's tensors to a model: shape checks, head re-initialisation, stem channel tiling.

Used by every official-checkpoint importer and by ``medseg finetune``. A model declares which of its
tensors are *heads* (re-initialised for a new label set) and which are the *stem* (tiled along the input
channel axis for more input channels) with two class attributes::

    head_prefixes = ("seg_outputs.",)
    stem_keys = ("conv_blocks_context.0.0.conv1.weight", "conv_blocks_context.0.0.conv3.weight")
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike

import torch
from torch import nn

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger

logger = get_logger(__name__)


@dataclass
class LoadReport:
    """What happened to every tensor when a checkpoint was matched to a model.

    ``loaded``: copied unchanged. ``adapted``: copied after tiling input channels. ``reinitialised``:
    model tensors deliberately left at their fresh initialisation (heads, or a decoder when only an
    encoder was loaded). ``unused``: checkpoint tensors with no place in the model. ``missing`` and
    ``mismatched`` are errors unless the caller allows them.
    """

    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    source: str = ""

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (f"{len(self.loaded)} loaded, {len(self.adapted)} adapted, {len(self.reinitialised)} "
                f"re-initialised, {len(self.unused)} unused, {len(self.missing)} missing, "
                f"{len(self.mismatched)} shape mismatches")


def _tile(value: torch.Tensor, want: tuple[int, ...]) -> torch.Tensor | None:
    """Repeat ``value`` along axis 1 to ``want[1]`` channels when that is a whole multiple, else None."""
    have = tuple(value.shape)
    if len(have) != len(want) or have[0] != want[0] or have[2:] != want[2:] or have[1] == 0:
        return None
    if want[1] % have[1]:
        return None
    reps = [1] * len(have)
    reps[1] = want[1] // have[1]
    return value.repeat(*reps)


def match_state_dict(
    state: Mapping[str, torch.Tensor],
    model: nn.Module,
    *,
    reinit_prefixes: Iterable[str] = (),
    tile_keys: Iterable[str] = (),
    allow_missing_prefixes: Iterable[str] = (),
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Pair checkpoint tensors with the model's by name and shape.

    Returns the tensors to load (already tiled where allowed) and the report; raises nothing, so callers
    decide what is fatal (see :func:`raise_for_report`).
    """
    reinit = tuple(reinit_prefixes)
    tiles = set(tile_keys)
    allow_missing = tuple(allow_missing_prefixes)
    own = model.state_dict()
    report = LoadReport()
    out: dict[str, torch.Tensor] = {}
    for key, target in own.items():
        if reinit and key.startswith(reinit):
            report.reinitialised.append(key)
            continue
        if key not in state:
            (report.reinitialised if allow_missing and key.startswith(allow_missing) else report.missing).append(key)
            continue
        value = state[key]
        want = tuple(target.shape)
        if tuple(value.shape) == want:
            out[key] = value
            report.loaded.append(key)
            continue
        tiled = _tile(value, want) if key in tiles else None
        if tiled is not None:
            out[key] = tiled
            report.adapted.append(key)
        else:
            report.mismatched.append((key, tuple(value.shape), want))
    report.unused = sorted(k for k in state if k not in own or (reinit and k.startswith(reinit)))
    return out, report


def raise_for_report(report: LoadReport, *, what: str, source: str | PathLike, hint: str | None = None,
                     unused_is_error: bool = False) -> None:
    """Raise a :class:`MedsegError` when tensors are missing, have the wrong shape (or, if asked, are extra)."""
    if not report.missing and not report.mismatched and not (unused_is_error and report.unused):
        return
    parts = []
    if report.mismatched:
        parts.append("shape mismatch: " + ", ".join(f"{k} {tuple(a)} in file vs {tuple(b)} in model"
                                                    for k, a, b in report.mismatched[:4])
                     + (f" (+{len(report.mismatched) - 4} more)" if len(report.mismatched) > 4 else ""))
    if report.missing:
        parts.append(f"{len(report.missing)} model tensors absent from the file (e.g. {', '.join(report.missing[:3])})")
    if report.unused:
        parts.append(f"{len(report.unused)} file tensors unused (e.g. {', '.join(report.unused[:3])})")
    raise MedsegError(
        f"checkpoint does not fit {what}: " + "; ".join(parts),
        path=source,
        hint=hint or "check the model name/size; to change classes or input channels use "
                     "reinit_heads / tile_input_channels (medseg finetune does this)",
    )


def apply_state(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Copy ``tensors`` into the model (every other tensor keeps its current value)."""
    merged = model.state_dict()
    for key, value in tensors.items():
        merged[key] = value.to(dtype=merged[key].dtype)
    model.load_state_dict(merged, strict=True)


def adapt_state_dict(
    state: Mapping[str, torch.Tensor],
    model: nn.Module,
    *,
    reinit_heads: bool = False,
    tile_input_channels: bool = False,
    load: bool = True,
    source: str | PathLike = "<state dict>",
) -> LoadReport:
    """Load ``state`` into ``model`` for fine-tuning and report what was loaded / re-initialised / adapted.

    Args:
        state: tensors with the model's own names (importers map official names first).
        model: a model whose class declares ``head_prefixes`` and ``stem_keys`` (see module doc).
        reinit_heads: keep the model's freshly initialised output heads (new label set) instead of
            loading them; the file's heads are reported as unused.
        tile_input_channels: when the model has more input channels than the file, repeat the stem
            weights along the input-channel axis (STU-Net's recipe: tiled, not divided).
        load: False only checks and reports.

    Raises :class:`MedsegError` when any other tensor is missing or has another shape.
    """
    heads = tuple(getattr(model, "head_prefixes", ())) if reinit_heads else ()
    if reinit_heads and not heads:
        raise MedsegError(f"{type(model).__name__} declares no head_prefixes; cannot re-initialise heads")
    stems = tuple(getattr(model, "stem_keys", ())) if tile_input_channels else ()
    tensors, report = match_state_dict(state, model, reinit_prefixes=heads, tile_keys=stems)
    report.source = str(source)
    raise_for_report(report, what=type(model).__name__, source=source)
    if load:
        apply_state(model, tensors)
    logger.info("%s: %s", source, report.summary())
    return report
