"""The model-card contract: what every zoo model declares about its inputs, outputs and weights.

``predict``, ``train``, ``finetune`` and ``evaluate`` read only the card, never the architecture, so any
registered network (2D or 3D) runs through the same code.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from medseg.core.errors import MedsegError

Activation = Literal["softmax", "sigmoid", "regression", "graph"]
IntensityKind = Literal["zscore", "ct", "percentile", "minmax", "none"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CardError(MedsegError, ValueError):
    """A model card (or a field override) that breaks the card contract; one line, exit code 2 in the CLI."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="fix the model card field (or the override that set it)")


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


CLEANUP_KEYS = frozenset({"keep_largest", "min_island_mm3", "fill_holes"})
OUTPUT_KEYS = frozenset({"sauna", "threshold", "label_values"})
SAUNA_KEYS = frozenset({"threshold", "activation", "save_soft"})


class Postprocess(Mapping[str, Any]):
    """A card's ``postprocess`` entry, validated when the card is built (a read-only mapping).

    Clean-up keys (applied to the label map, :mod:`medseg.inference.postprocess`): ``keep_largest``
    (bool or class list), ``min_island_mm3`` (float >= 0), ``fill_holes`` (bool or class list).
    Output keys (how logits become labels, :mod:`medseg.models.heads`): ``threshold`` (sigmoid foreground
    probability in (0, 1)), ``label_values`` (sigmoid regions: ``{region name: label value}`` in painting
    order, largest region first, BraTS-style nested regions), ``sauna`` (regression models:
    ``{"threshold", "activation", "save_soft"}``).
    """

    def __init__(self, values: Mapping[str, Any] | None = None, *, owner: str = "card") -> None:
        raw = dict(values or {})
        unknown = set(raw) - CLEANUP_KEYS - OUTPUT_KEYS
        if unknown:
            raise CardError(f"{owner}: unknown postprocess keys {sorted(unknown)}; known: "
                             f"{sorted(CLEANUP_KEYS | OUTPUT_KEYS)}")
        for key in ("keep_largest", "fill_holes"):
            value = raw.get(key, False)
            if not isinstance(value, (bool, str, int, list, tuple)):
                raise CardError(f"{owner}: postprocess {key} must be true/false or a list of classes")
        island = raw.get("min_island_mm3", 0.0)
        if isinstance(island, bool) or not isinstance(island, (int, float)) or island < 0:
            raise CardError(f"{owner}: postprocess min_island_mm3 must be a number >= 0, got {island!r}")
        if "threshold" in raw:
            raw["threshold"] = _probability(raw["threshold"], f"{owner}: postprocess threshold")
        if "label_values" in raw:
            lv = raw["label_values"]
            if not isinstance(lv, Mapping) or not lv:
                raise CardError(f"{owner}: postprocess label_values must map region names to label values")
            values_seen = [v for v in lv.values()]
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values_seen) \
                    or len(set(values_seen)) != len(values_seen):
                raise CardError(f"{owner}: postprocess label_values must be distinct integers >= 1, got {dict(lv)}")
            raw["label_values"] = {str(k): int(v) for k, v in lv.items()}
        if "sauna" in raw:
            sauna = dict(raw["sauna"] or {})
            bad = set(sauna) - SAUNA_KEYS
            if bad:
                raise CardError(f"{owner}: unknown postprocess.sauna keys {sorted(bad)}; known: {sorted(SAUNA_KEYS)}")
            if "threshold" in sauna:
                sauna["threshold"] = _probability(sauna["threshold"], f"{owner}: postprocess.sauna threshold")
            if sauna.get("activation", "tanh") not in ("tanh", "sigmoid"):
                raise CardError(f"{owner}: postprocess.sauna.activation must be 'tanh' or 'sigmoid'")
            raw["sauna"] = sauna
        self._values = raw

    @property
    def threshold(self) -> float | None:
        """The sigmoid foreground probability threshold (None: 0.5)."""
        return self._values.get("threshold")

    @property
    def label_values(self) -> dict[str, int]:
        """Sigmoid regions: region name -> label value painted, in painting order (empty: exclusive classes)."""
        return dict(self._values.get("label_values") or {})

    @property
    def sauna(self) -> dict[str, Any] | None:
        """A regression model's output options (None for other models)."""
        return self._values.get("sauna")

    def cleanup(self) -> dict[str, Any]:
        """Only the clean-up keys (for :class:`medseg.inference.postprocess.PostprocessSpec`)."""
        return {k: v for k, v in self._values.items() if k in CLEANUP_KEYS}

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self) == dict(other)

    def __hash__(self) -> int:
        return hash(repr(sorted(self._values.items(), key=lambda kv: kv[0])))

    def __repr__(self) -> str:
        return f"Postprocess({self._values!r})"

    def __deepcopy__(self, memo: dict) -> Postprocess:
        import copy

        return Postprocess(copy.deepcopy(self._values, memo))


def _probability(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise CardError(f"{what} must lie strictly between 0 and 1, got {value!r}")
    return float(value)


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
            raise CardError(f"pretrained entry {self.tag!r}: sha256 must be 64 lowercase hex characters")
        unknown = set(self.card) - {f.name for f in dataclasses.fields(ModelCard)}
        if unknown:
            raise CardError(f"pretrained entry {self.tag!r}: unknown card fields {sorted(unknown)}")


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
    # where windows go on whole scans (medseg.inference.crop): "body" (CT), "nonzero", "none"; None: body for
    # CT models, nonzero for the rest
    crop: str | None = None
    # mirroring TTA when the user says neither --tta nor --no-tta: "on", "off", or None (on, except on a CPU
    # for large scans: medseg.inference.preflight.default_tta)
    tta: str | None = None
    postprocess: Mapping[str, Any] = field(default_factory=Postprocess)  # a Postprocess once built
    graph: tuple[tuple[str, int], ...] = ()  # activation "graph": (organ, landmark count) per contour, node order
    description: str = ""
    pretrained: tuple[Pretrained, ...] = ()
    reference: str = ""                    # the paper / code the model follows
    # per-structure quality estimates (medseg.quality): "reference" = training distribution per label name
    # (volume, components, intensity), "calibration" = the fitted signals -> predicted Dice mapping (optional)
    quality: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise CardError(f"{self.name}: spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if len(self.roi_size) != self.spatial_dims:
            raise CardError(f"{self.name}: roi_size {self.roi_size} must have {self.spatial_dims} entries")
        if self.spacing is not None and len(self.spacing) != 3 and self.spatial_dims == 3:
            raise CardError(f"{self.name}: spacing must have 3 entries")
        if self.activation in ("softmax", "sigmoid") and len(self.labels) != self.out_channels:
            raise CardError(
                f"{self.name}: {len(self.labels)} label names for {self.out_channels} output channels"
            )
        if len(self.channel_names) != self.in_channels:
            raise CardError(f"{self.name}: {len(self.channel_names)} channel names for {self.in_channels} inputs")
        post = Postprocess(self.postprocess, owner=self.name)
        object.__setattr__(self, "postprocess", post)
        regions = post.label_values
        if regions:
            if self.activation != "sigmoid":
                raise CardError(f"{self.name}: postprocess label_values is for sigmoid region models")
            if set(regions) != set(self.labels):
                raise CardError(f"{self.name}: postprocess label_values {sorted(regions)} must name every output "
                                 f"channel {list(self.labels)}")
        if post.sauna is not None and self.activation != "regression":
            raise CardError(f"{self.name}: postprocess sauna is for regression (SAUNA) models")
        if post.threshold is not None and self.activation != "sigmoid":
            raise CardError(f"{self.name}: postprocess threshold is for sigmoid models "
                             "(SAUNA models: postprocess.sauna.threshold)")
        if self.crop not in (None, "body", "nonzero", "none"):
            raise CardError(f"{self.name}: crop must be body, nonzero or none, got {self.crop!r}")
        if self.tta not in (None, "on", "off"):
            raise CardError(f"{self.name}: tta must be on or off (or left out), got {self.tta!r}")
        if not isinstance(self.quality, Mapping) or set(self.quality) - {"reference", "calibration"}:
            raise CardError(f"{self.name}: quality must be a mapping with 'reference' and/or 'calibration'")
        if self.intensity.nonzero and self.intensity.kind != "zscore":
            raise CardError(f"{self.name}: intensity nonzero applies to zscore normalisation only")

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


def target_spacing(card: ModelCard) -> tuple[float | None, ...] | None:
    """The card's spacing as one entry per volume axis (``None`` keeps an axis, e.g. a 2D model's slice axis)."""
    if card.spacing is None:
        return None
    spacing = tuple(float(s) for s in card.spacing)
    if len(spacing) == 3:
        return spacing
    if card.spatial_dims == 2 and len(spacing) == 2:
        full: list[float | None] = list(spacing)
        full.insert(card.slice_axis, None)
        return tuple(full)
    raise MedsegError(f"model card {card.name!r}: spacing {card.spacing} needs 3 entries (or 2 for a 2D model)")


def shipped_quality(weights_file: str) -> dict[str, Any]:
    """The ``card.quality`` block (training reference and calibration, :mod:`medseg.quality`) stored in the
    export JSON of shipped weights, ``medseg/data/pretrained/<weights_file>.json``; {} when it has none."""
    import json

    from medseg.core.resources import pretrained_dir

    try:
        state = json.loads((pretrained_dir() / f"{weights_file}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    quality = state.get("card", {}).get("quality") if isinstance(state, dict) else None
    return dict(quality) if isinstance(quality, Mapping) else {}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
