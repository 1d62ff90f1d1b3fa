"""nnU-Net v2 label semantics from ``dataset.json``: plain labels (softmax heads) or regions (sigmoid heads)."""
from __future__ import annotations

from dataclasses import dataclass

from medseg.core.errors import MedsegError


@dataclass(frozen=True)
class Labels:
    """Heads, names and how logits become a label map."""

    names: dict[int, str]                       # label value -> name (background included)
    regions: list[tuple[int, ...]] | None       # foreground regions, one per sigmoid head (None: softmax)
    regions_class_order: list[int] | None
    ignore_label: int | None

    @property
    def has_regions(self) -> bool:
        return self.regions is not None

    @property
    def num_heads(self) -> int:
        return len(self.regions) if self.regions is not None else len(self.all_labels)

    @property
    def all_labels(self) -> list[int]:
        return sorted(v for v in self.names if v != self.ignore_label)

    @property
    def foreground_labels(self) -> list[int]:
        """nnU-Net's ``LabelManager.foreground_labels``: every label value but 0 (a cascade's one-hot channels)."""
        values = set(self.names) if self.regions is None else {v for r in self.regions for v in r}
        return sorted(v for v in values if v not in (0, self.ignore_label))

    @property
    def output_values(self) -> list[int]:
        """Values the written label map can hold."""
        return [0, *self.regions_class_order] if self.regions_class_order else self.all_labels


def _is_background(value) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return {int(v) for v in values} == {0}


def read_labels(dataset: dict) -> Labels:
    """Parse ``dataset.json['labels']`` (name -> int or list of ints) and ``regions_class_order`` the way
    nnU-Net's LabelManager does: regions when any entry lists more than one value."""
    raw = {k: v for k, v in dataset.get("labels", {}).items()}
    if "background" not in raw or _is_background(raw["background"]) is False:
        raise MedsegError("dataset.json must declare 'background': 0 in 'labels'")
    ignore = raw.pop("ignore", None)
    ignore = int(ignore) if isinstance(ignore, int) else None
    if any(isinstance(v, (list, tuple)) and len(v) > 1 for v in raw.values()):
        foreground = [(name, tuple(int(x) for x in (v if isinstance(v, (list, tuple)) else [v])))
                      for name, v in raw.items() if not _is_background(v)]
        order = dataset.get("regions_class_order")
        if not isinstance(order, list) or len(order) != len(foreground):
            raise MedsegError("dataset.json defines regions but no matching 'regions_class_order'",
                              hint=f"it needs one output value per region ({len(foreground)})")
        names = {0: "background", **{int(v): name for v, (name, _) in zip(order, foreground)}}
        return Labels(names, [r for _, r in foreground], [int(v) for v in order], ignore)
    names = {}
    for name, v in raw.items():
        for x in (v if isinstance(v, (list, tuple)) else [v]):
            names[int(x)] = name
    labels = sorted(names)
    if labels != list(range(len(labels))):
        raise MedsegError(f"dataset.json labels must be consecutive integers from 0, got {labels}")
    return Labels(names, None, None, ignore)
