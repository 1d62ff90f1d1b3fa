"""Which scans to segment and where each result goes; splitting the list across processes.

Inputs are files, folders of scans, or DICOM series folders. Output naming:

- one input and ``-o`` with an image extension: that file;
- otherwise ``-o`` is a folder holding ``CASE.EXT`` (multilabel) or ``CASE/`` (per-class) per input;
- no ``-o``: ``CASE_seg.EXT`` next to an input file, ``FOLDER_seg/`` beside an input folder.

Each output keeps its input's format, except where that format cannot hold labels safely: DICOM and
other series -> ``.nii.gz``, JPEG -> ``.png`` (lossless), ``.nhdr``/``.mhd`` -> ``.nrrd``/``.mha``
(single files, so the write stays atomic).

``output_format`` ``dicom-seg`` or ``rtstruct`` writes one ``.dcm`` object per DICOM series input (inputs
must be DICOM series folders: these objects reference their source images); ``-o NAME.dcm`` alone means
``dicom-seg``.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from medseg.core.errors import MedsegError
from medseg.io.formats import ALL, case_name, split_ext

OUTPUT_TYPES = ("multilabel", "per-class")
OUTPUT_FORMATS = ("image", "dicom-seg", "rtstruct")
_REMAP = {".jpg": ".png", ".jpeg": ".png", ".nhdr": ".nrrd", ".mhd": ".mha"}
_SKIP_SUFFIXES = (".json", ".csv", ".txt", ".md", ".tmp")


@dataclass(frozen=True)
class Case:
    """One scan to segment and the path its label output goes to (a file, or a folder for per-class)."""

    name: str
    input: Path
    output: Path


def is_dicom_folder(path: Path) -> bool:
    """A folder holding ``.dcm`` files or a DICOMDIR."""
    if not path.is_dir():
        return False
    for child in path.iterdir():
        if child.is_file() and (child.suffix.lower() == ".dcm" or child.name.upper() == "DICOMDIR"):
            return True
    return False


def scans_in(folder: Path) -> list[Path]:
    """Image files (by extension) and DICOM series sub-folders directly inside ``folder``, sorted."""
    found = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_file() and split_ext(child)[1] in ALL and not child.name.lower().endswith(_SKIP_SUFFIXES) or child.is_dir() and is_dicom_folder(child):
            found.append(child)
    return found


def output_extension(path: Path) -> str:
    """The label file extension for an input (see the module docstring)."""
    if path.is_dir():
        return ".nii.gz"
    ext = split_ext(path)[1]
    return _REMAP.get(ext, ext if ext in ALL else ".nii.gz")


def resolve_output_format(output_format: str | None, output: str | PathLike | None) -> str:
    """``image``, ``dicom-seg`` or ``rtstruct``; None infers from ``-o`` (``.dcm``: ``dicom-seg``)."""
    if output_format is None:
        return "dicom-seg" if output is not None and split_ext(output)[1] == ".dcm" else "image"
    if output_format not in OUTPUT_FORMATS:
        raise MedsegError(f"unknown output format {output_format!r}", hint=f"use one of {', '.join(OUTPUT_FORMATS)}")
    if output is not None and output_format != "image" and split_ext(output)[1] in ALL \
            and split_ext(output)[1] != ".dcm":
        raise MedsegError(f"--output-format {output_format} writes .dcm files", path=output,
                          hint="name the output NAME.dcm or give a folder")
    if output is not None and output_format == "image" and split_ext(output)[1] == ".dcm":
        raise MedsegError("medseg writes .dcm files as DICOM-SEG or RTSTRUCT only", path=output,
                          hint="add --output-format dicom-seg or rtstruct, or give a folder for a DICOM series")
    return output_format


def _check_dicom_inputs(pairs, output_format: str, per_class: bool) -> None:
    if per_class:
        raise MedsegError(f"--output-format {output_format} holds every label in one object",
                          hint="drop --output-type per-class")
    for scan, _ in pairs:
        if not is_dicom_folder(scan):
            raise MedsegError(f"{output_format} output needs a DICOM series as input (the object references its "
                              "source images), this is not a DICOM series folder", path=scan,
                              hint="segment the DICOM series folder, or write .nii.gz for this input")


def plan_cases(inputs: Sequence[str | PathLike], output: str | PathLike | None = None,
               output_type: str = "multilabel", output_format: str | None = None) -> list[Case]:
    """Expand inputs into cases with their output paths (errors for missing inputs and name clashes)."""
    output_format = resolve_output_format(output_format, output)
    if output_type not in OUTPUT_TYPES:
        raise MedsegError(f"unknown output type {output_type!r}", hint=f"use one of {', '.join(OUTPUT_TYPES)}")
    if not inputs:
        raise MedsegError("no input given", hint="medseg predict scan.nii.gz -o seg.nii.gz")
    pairs: list[tuple[Path, Path | None]] = []  # (scan, the folder it came from)
    for item in map(Path, inputs):
        if not item.exists():
            raise MedsegError("input not found", path=item, hint="check the path")
        if item.is_dir() and not is_dicom_folder(item):
            scans = scans_in(item)
            if not scans:
                raise MedsegError("holds no scans", path=item,
                                  hint=f"put image files ({', '.join(ALL[:4])}, ...) or DICOM series folders in it")
            pairs += [(scan, item) for scan in scans]
        else:
            pairs.append((item, None))
    per_class = output_type == "per-class"
    if output_format != "image":
        _check_dicom_inputs(pairs, output_format, per_class)
    out = Path(output) if output is not None else None
    as_file = out is not None and split_ext(out)[1] in ALL
    if out is not None and not as_file:
        _refuse_unknown_file_extension(out, str(output))
    if as_file and (len(pairs) != 1 or per_class):
        raise MedsegError(
            "-o names a file, but " + ("per-class output needs a folder" if per_class
                                       else f"there are {len(pairs)} inputs"),
            path=out, hint="give -o a folder, e.g. -o results/",
        )
    cases = []
    for scan, folder in pairs:
        name = case_name(scan)
        ext = output_extension(scan) if output_format == "image" else ".dcm"
        if as_file and out is not None:
            target = out
        elif out is not None:
            target = out / (name if per_class else name + ext)
        else:
            base = folder.parent / f"{folder.name}_seg" if folder is not None else scan.parent
            suffix = "" if folder is not None else "_seg"
            target = base / (f"{name}{suffix}" if per_class else f"{name}{suffix}{ext}")
        cases.append(Case(name, scan, target))
    clashes = [str(p) for p, n in Counter(c.output for c in cases).items() if n > 1]
    if clashes:
        raise MedsegError(f"several inputs would write the same output: {', '.join(clashes[:3])}",
                          hint="rename the inputs or run the folders separately")
    return cases


def _refuse_unknown_file_extension(out: Path, given: str | PathLike) -> None:
    """``-o seg.txt`` is a typo for a file, not a folder to create: stop and say so."""
    text = str(given)
    if out.suffix and not out.is_dir() and not text.endswith(("/", "\\")):
        raise MedsegError(f"unknown image extension {out.suffix!r} for -o", path=out,
                          hint="name a label file (.nii.gz, .nrrd, .mha, .png, .tif) or a folder (end it with /)")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0-based, like torchrun's RANK) -> ``(i, n)``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as exc:
        raise MedsegError(f"--shard {text!r} is not i/n", hint="e.g. --shard 0/4 ... --shard 3/4") from exc
    if count < 1 or not 0 <= index < count:
        raise MedsegError(f"--shard {text!r}: need 0 <= i < n", hint="shards are numbered from 0, like torchrun RANK")
    return index, count


def shard_from_env() -> tuple[int, int] | None:
    """``(RANK, WORLD_SIZE)`` when launched by torchrun with more than one process, else None."""
    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if rank is None or world is None or int(world) <= 1:
        return None
    return int(rank), int(world)


def select_shard(cases: Sequence[Case], index: int, count: int) -> list[Case]:
    """Every ``count``-th case starting at ``index`` (round robin keeps shards balanced)."""
    return [case for i, case in enumerate(cases) if i % count == index]
