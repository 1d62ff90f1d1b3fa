"""Files shipped inside the installed package (``medseg/data/...``), found through ``importlib.resources``.

The shipped weights (``data/pretrained``), the ready recipes (``data/pipelines``) and the sample scans
(``data/sample``) travel in the wheel, so lookups never go through the source tree: the default model works
the same in an editable checkout and in ``pip install medseg``.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from medseg.core.errors import MedsegError


def package_data(*parts: str) -> Path:
    """The path of ``medseg/data/<parts...>`` in the installed package (it may not exist).

    medseg installs as plain files (never zipped), so the resource is a real folder on disk that
    file readers (nibabel, safetensors) can open by path.
    """
    root = files("medseg").joinpath("data", *parts)
    if not isinstance(root, Path):
        raise MedsegError(f"medseg's package data is not on the file system ({root})",
                          hint="install medseg as a regular (unzipped) package: pip install medseg")
    return root


def pretrained_dir() -> Path:
    """The shipped weights (``medseg/data/pretrained``)."""
    return package_data("pretrained")


def pipelines_dir() -> Path:
    """The shipped recipes (``medseg/data/pipelines``; a copy of the repository's ``pipelines/``)."""
    return package_data("pipelines")


def sample_dir() -> Path:
    """The bundled sample scans (``medseg/data/sample``)."""
    return package_data("sample")
