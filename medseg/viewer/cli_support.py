"""What ``medseg view`` checks before writing a page: the output name, label names, opening a browser."""
from __future__ import annotations

import webbrowser
from os import PathLike
from pathlib import Path

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger

logger = get_logger(__name__)


def output_path(scan: str | PathLike, output: str | PathLike | None) -> Path:
    """The page to write: ``output`` must end in .html/.htm (a folder gets ``CASE_view.html`` inside)."""
    from medseg.viewer import default_output

    if output is None:
        return default_output(scan)
    path = Path(output)
    if path.is_dir():
        return path / default_output(scan).name
    if path.suffix.lower() not in (".html", ".htm"):
        raise MedsegError(f"the viewer writes an HTML page, not {path.suffix or 'a file without extension'}",
                          path=path, hint=f"use e.g. -o {path.with_suffix('.html').name}")
    return path


def label_names(model: str | None, dataset_json: str | PathLike | None) -> dict[int, str] | None:
    """``{value: name}`` from a model card or a dataset.json (not both); None: the files' own names."""
    if model is not None and dataset_json is not None:
        raise MedsegError("give label names with --dataset-json or with --model, not both")
    if dataset_json is not None:
        from medseg.reports.labels import names_from_dataset_json

        return names_from_dataset_json(dataset_json)
    if model is not None:
        from medseg.models import get_card
        from medseg.reports.labels import names_from_card_labels

        return names_from_card_labels(get_card(model).labels)
    return None


def open_in_browser(page: Path) -> None:
    """Open the page in the default browser; a machine without one only gets a log line."""
    if not webbrowser.open(page.resolve().as_uri()):
        logger.warning("no browser found to open %s; open the file yourself", page)
