"""The model-card contract: what every zoo model declares about its inputs, outputs and weights.

``predict``, ``train``, ``finetune`` and ``evaluate`` read only the card, never the architecture, so any
registered network (2D or 3D) runs through the same code.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Activation = Literal["softmax", "sigmoid", "regression", "graph"]
IntensityKind = Literal["zscore", "ct", "percentile", "minmax", "none"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Intensity:
    """How raw voxel values become network input.

    - ``zscore``: per-image (x - mean) / std, optionally after clipping to the [low, high] percentiles.
    - ``ct``: clip to [low, high] HU, then (x - mean) / std with fixed dataset statistics.
    - ``percentile``: clip to the [low, high] percentiles, then rescale to [0, 1].
    - ``minmax``: rescale the image's own min..max to [0, 1].
    - ``none``: feed values unchanged.
    """

    kind: IntensityKind = "zscore"
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    std: float | None = None
    nonzero: bool = False   # zscore: statistics over non-zero voxels only, zeros kept (BraTS-style skull-stripped MR)


@dataclass(frozen=True)
class Pretrained:
    """One set of weights for a model: a local file checked by sha256 before every load.

    ``sha256`` is None when the authors publish no hash: ``medseg models import`` then records the hash of
    the file the user supplies next to it, and every later load is checked against that record.
    ``format`` says how the file is read: ``state_dict`` (our/MONAI names), ``nnunet`` (official STU-Net
    nnU-Net v1 ``.model`` / v2 ``.pth``), ``swin_ssl`` (Swin UNETR self-supervised encoder only),
    ``monai_bundle`` (a MONAI bundle / research checkpoint).
    """

    tag: str
    file: str
    sha256: str | None
    license: str = "unknown"
    data: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    url: str | None = None
    card: Mapping[str, Any] = field(default_factory=dict)   # ModelCard field overrides (labels, spacing, ...)
    arch: Mapping[str, Any] = field(default_factory=dict)   # builder keyword overrides the weights need
    format: str = "state_dict"
    note: str = ""                                           # e.g. how to obtain / unpack the file

    def __post_init__(self) -> None:
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError(f"pretrained entry {self.tag!r}: sha256 must be 64 lowercase hex characters")
        unknown = set(self.card) - {f.name for f in dataclasses.fields(ModelCard)}
        if unknown:
            raise ValueError(f"pretrained entry {self.tag!r}: unknown card fields {sorted(unknown)}")


@dataclass(frozen=True)
class ModelCard:
    """Everything the pipeline needs to know about a model.

    ``labels[i]`` names output channel ``i`` (for softmax, index == label value, ``labels[0]`` is the
    background). ``roi_size`` is the sliding-window patch (3D) or the slice size (2D models).
    """

    name: str
    spatial_dims: Literal[2, 3]
    in_channels: int
    out_channels: int
    labels: tuple[str, ...]
    channel_names: tuple[str, ...] = ("image",)
    activation: Activation = "softmax"
    roi_size: tuple[int, ...] = (128, 128, 128)
    spacing: tuple[float, ...] | None = None
    intensity: Intensity = field(default_factory=Intensity)
    divisible_by: int = 32
    deep_supervision: int = 0              # number of extra low-resolution outputs in training mode
    slice_axis: int = 2                    # 2D models on volumes: the axis slices are taken along
    mirror_axes: tuple[int, ...] = (0, 1, 2)  # spatial axes flip-TTA may use
    orientation: str | None = "RAS"        # frame images are reoriented to before inference
    modality: str = "any"
    # largest physical extent (mm) of the scans the model was made for, (typical min, typical max); predict
    # warns outside it and refuses far outside it (medseg.inference.preflight). None: any field of view.
    field_of_view_mm: tuple[float, float] | None = None
    postprocess: Mapping[str, Any] = field(default_factory=dict)
    graph: tuple[tuple[str, int], ...] = ()  # activation "graph": (organ, landmark count) per contour, node order
    description: str = ""
    pretrained: tuple[Pretrained, ...] = ()
    reference: str = ""                    # the paper / code the model follows
    # What forward returns in training mode: "default" = logits, or a tuple of logits (full resolution
    # first) when deep_supervision > 0; "dict" = {"logits", "predictions", "aux_loss"}, see
    # medseg.models.unpack_train_output.
    train_output: Literal["default", "dict"] = "default"

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"{self.name}: spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if len(self.roi_size) != self.spatial_dims:
            raise ValueError(f"{self.name}: roi_size {self.roi_size} must have {self.spatial_dims} entries")
        if self.spacing is not None and len(self.spacing) != 3 and self.spatial_dims == 3:
            raise ValueError(f"{self.name}: spacing must have 3 entries")
        if self.activation in ("softmax", "sigmoid") and len(self.labels) != self.out_channels:
            raise ValueError(
                f"{self.name}: {len(self.labels)} label names for {self.out_channels} output channels"
            )
        if len(self.channel_names) != self.in_channels:
            raise ValueError(f"{self.name}: {len(self.channel_names)} channel names for {self.in_channels} inputs")

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def get_pretrained(self, tag: str | None = None) -> Pretrained:
        """The pretrained entry named ``tag`` (the first one when ``tag`` is None)."""
        if not self.pretrained:
            raise KeyError(f"{self.name} has no pretrained weights")
        if tag is None:
            return self.pretrained[0]
        for entry in self.pretrained:
            if entry.tag == tag:
                return entry
        raise KeyError(f"{self.name} has no pretrained tag {tag!r}; known: {[p.tag for p in self.pretrained]}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (used by ``medseg models show`` and provenance sidecars)."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
