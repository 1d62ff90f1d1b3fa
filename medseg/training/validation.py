"""Check a whole dataset before any training starts, listing every problem with its file."""
from __future__ import annotations

import numpy as np

from medseg.core.errors import MedsegError
from medseg.io import read_image
from medseg.training.datalist import Dataset


def validate_dataset(dataset: Dataset, *, atol: float = 1e-4) -> None:
    """Raise one :class:`MedsegError` listing every missing pair, geometry mismatch and stray label value."""
    if not dataset.cases:
        raise MedsegError("the dataset is empty", path=dataset.root, hint="check imagesTr/ or the CSV list")
    allowed = set(dataset.labels) if dataset.labels else None
    problems: list[str] = []
    for case in dataset.cases:
        for key in ("image", "label"):
            if not case[key].exists():
                problems.append(f"{case[key]}: missing {key} for case {case['case']}")
        if any(not case[k].exists() for k in ("image", "label")):
            continue
        try:
            image = read_image(case["image"], allow_multichannel=True)
            label = read_image(case["label"])
        except MedsegError as exc:
            problems.append(str(exc))
            continue
        if tuple(image.shape[1:]) != tuple(label.shape[1:]):
            problems.append(f"{case['label']}: shape {tuple(label.shape[1:])} differs from image {tuple(image.shape[1:])}")
        elif not np.allclose(image.affine.numpy(), label.affine.numpy(), atol=atol):
            problems.append(f"{case['label']}: affine differs from its image {case['image']}")
        values = np.unique(label.as_tensor().numpy())
        if not np.array_equal(values, np.round(values)):
            problems.append(f"{case['label']}: non-integer label values (is this a probability map?)")
        elif allowed is not None and not set(values.astype(int).tolist()) <= allowed:
            stray = sorted(set(values.astype(int).tolist()) - allowed)
            problems.append(f"{case['label']}: label values {stray} are not in the declared labels {sorted(allowed)}")
    if problems:
        shown = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise MedsegError(f"{len(problems)} problem(s) in the dataset:\n  {shown}{more}",
                          hint="fix or remove these cases, then run again")
