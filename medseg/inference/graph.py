"""``medseg predict`` for graph models (card activation ``"graph"``, e.g. HybridGNet): each 2D image gives a
rasterised label mask in the image's geometry plus a landmark JSON (ordered contour points per organ)."""
from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
from torch import nn

from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.core.paths import refuse_writing_inputs
from medseg.io import read_image, write_image
from medseg.io.formats import IMAGE_2D, NIFTI, case_name, split_ext

logger = get_logger(__name__)


@dataclass
class GraphSummary:
    done: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def _expand(inputs: list[str | PathLike]) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if split_ext(p)[1] in IMAGE_2D + NIFTI)
        else:
            files.append(item)
    if not files:
        raise MedsegError("no input images found", hint="give image files or a folder of them")
    return files


def _targets(source: Path, output: Path | None, single: bool) -> tuple[Path, Path]:
    if single and output is not None and split_ext(output)[1]:
        mask = output
    else:
        folder = output or Path.cwd()
        mask = folder / f"{case_name(source)}{split_ext(source)[1] if split_ext(source)[1] != '.jpg' else '.png'}"
    stem, _ = split_ext(mask)
    return mask, mask.with_name(f"{stem}.landmarks.json")


def predict_graph_files(model: nn.Module, card: ModelCard, inputs: list[str | PathLike],
                        output: str | PathLike | None, *, name: str) -> GraphSummary:
    """Run a graph model on each image; write ``<case>.<ext>`` (labels: organ k -> k+1) and
    ``<case>.landmarks.json``. A bad image is reported and skipped."""
    from medseg.models._graph_predict import (
        graph_to_mask,
        predict_graph,
        write_landmarks_json,
    )

    files = _expand(inputs)
    out = Path(output) if output is not None else None
    refuse_writing_inputs([p for f in files for p in _targets(f, out, single=len(files) == 1)], files)
    organs = [organ for organ, _ in card.graph]
    summary = GraphSummary()
    model.eval()
    for path in files:
        try:
            image = read_image(path, allow_multichannel=True)
            if image.ndim != 3:
                raise MedsegError(f"graph models take 2D images, got shape {tuple(image.shape[1:])}", path=path)
            array = np.moveaxis(image.as_tensor().numpy(), 0, -1).swapaxes(0, 1)   # (rows, cols, C)
            graph = predict_graph(model, array, source=path)
            mask = graph_to_mask(graph, array.shape[:2], organs)
            mask_path, json_path = _targets(path, out, single=len(files) == 1)
            write_image(mask.T[None], mask_path, affine=np.asarray(image.affine))
            write_landmarks_json(json_path, graph, image_shape=array.shape[:2], model=name, source=path,
                                 organs=organs)
            summary.done.append(mask_path)
        except MedsegError as exc:
            logger.error("%s", exc)
            summary.failed.append((path, str(exc)))
    return summary


class GraphPredictor:
    """A graph (landmark) model behind the predictor interface of :func:`medseg.api.predict`: each 2D image
    gives a label map (organ k -> k + 1, the contours filled) in the image's geometry; the landmark contours
    are in ``Prediction.settings["landmarks"]`` (pixels)."""

    def __init__(self, model: nn.Module, card: ModelCard, info, *, device: str = "auto") -> None:
        from medseg.inference.devices import resolve_device
        from medseg.models.heads import head_for

        self.model, self.card, self.info, self.head = model.eval(), card, info, head_for(card)
        self.device = resolve_device(device)
        self.model.to(self.device)
        self.organs = [organ for organ, _ in card.graph]

    @property
    def label_names(self) -> tuple[str, ...]:
        return ("background", *self.organs)

    def predict(self, image, *, path: str | None = None, progress=None):
        """Segment one channel-first 2D image (a MetaTensor from :func:`medseg.io.read_image`)."""
        import time

        import torch
        from monai.data import MetaTensor

        from medseg.inference.predictor import Prediction
        from medseg.models._graph_predict import graph_to_mask, predict_graph

        start = time.perf_counter()
        image = image if isinstance(image, MetaTensor) else MetaTensor(image)
        if image.ndim != 3:
            raise MedsegError(f"graph models take 2D images, got shape {tuple(image.shape[1:])}", path=path)
        array = np.moveaxis(image.as_tensor().cpu().numpy(), 0, -1).swapaxes(0, 1)   # (rows, cols, C)
        graph = predict_graph(self.model, array, source=path)
        mask = graph_to_mask(graph, array.shape[:2], self.organs)
        labels = MetaTensor(torch.from_numpy(np.ascontiguousarray(mask.T))[None], affine=image.affine,
                            meta={"labels": list(self.label_names), "model": self.info.full_name,
                                  "filename_or_obj": path or ""})
        settings = {"device": str(self.device), "landmarks": {k: np.asarray(v).tolist() for k, v in graph.items()}}
        return Prediction(labels, self.label_names, None, settings, {"total_s": time.perf_counter() - start})
