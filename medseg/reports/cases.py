"""Pair prediction and reference files by case name (files or folders), listing what does not match."""
from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from medseg.core.errors import MedsegError
from medseg.io.formats import ALL, case_name, split_ext


@dataclass
class CasePairs:
    """Matched ``(case, prediction, reference)`` triples, sorted by case, and the unmatched case names."""

    pairs: list[tuple[str, Path, Path]]
    only_in_prediction: list[str] = field(default_factory=list)
    only_in_reference: list[str] = field(default_factory=list)


def match_cases(pred: str | PathLike, ref: str | PathLike) -> CasePairs:
    """Two files make one case; two folders are matched by case name (file name without extension).

    Raises:
        MedsegError: a path is missing, a file is paired with a folder, a folder has two files for one
            case, or no case name is common to both folders.
    """
    pred, ref = Path(pred), Path(ref)
    for p, what in ((pred, "prediction"), (ref, "reference")):
        if not p.exists():
            raise MedsegError(f"{what} path not found", path=p, hint="check the path")
    if pred.is_file() and ref.is_file():
        return CasePairs([(case_name(ref), pred, ref)])
    if pred.is_dir() != ref.is_dir():
        folder, file = (pred, ref) if pred.is_dir() else (ref, pred)
        raise MedsegError(f"cannot pair the folder {folder} with the single file {file}",
                          hint="give two files, or two folders whose files share case names")
    preds, refs = _index(pred), _index(ref)
    common = sorted(set(preds) & set(refs))
    if not common:
        raise MedsegError(
            f"no case name is common to the prediction folder ({len(preds)} files) and the reference folder "
            f"({len(refs)} files): e.g. {_examples(preds)} vs {_examples(refs)}",
            path=pred,
            hint="name each prediction like its reference file (case_001.nii.gz in both)",
        )
    return CasePairs(
        pairs=[(c, preds[c], refs[c]) for c in common],
        only_in_prediction=sorted(set(preds) - set(refs)),
        only_in_reference=sorted(set(refs) - set(preds)),
    )


def _index(folder: Path) -> dict[str, Path]:
    """Image files of a folder by case name (hidden files and non-image files such as JSON are skipped)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or split_ext(path)[1] not in ALL:
            continue
        name = case_name(path)
        if name in found:
            raise MedsegError(f"two files for case {name!r}: {found[name].name} and {path.name}", path=folder,
                              hint="keep one file per case")
        found[name] = path
    return found


def _examples(index: dict[str, Path]) -> str:
    names = sorted(index)[:2]
    return ", ".join(names) if names else "(no image files)"
