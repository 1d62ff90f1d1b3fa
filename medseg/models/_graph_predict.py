"""Prediction for graph models (card activation "graph"): image -> landmark contours -> mask and JSON.

The predict engine calls, for a 2D image array ``image`` indexed ``[row, col]``::

    graph = predict_graph(model, image)                  # {organ: (N, 2) (x, y) pixels of ``image``}
    mask = graph_to_mask(graph, image.shape[:2], organs) # uint8 [row, col]; organ k -> label k + 1
    write_landmarks_json(path, graph, image_shape=image.shape[:2], model=name, source=input_path)
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from os import PathLike

import numpy as np
import torch
from torch import nn

from medseg.core.atomic import atomic_write_text
from medseg.core.card import Intensity
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.models._graph import template_from_card
from medseg.transforms.landmarks import Letterbox, landmarks_to_mask, to_grey

logger = get_logger(__name__)

FORMAT = "medseg-landmarks"
COORDINATES = ("pixels of the input image: x = column, y = row, pixel centres on integers; each contour is "
               "closed (last point joins the first), clockwise on screen, starting at the topmost point")


def normalise_image(image: np.ndarray, intensity: Intensity) -> np.ndarray:
    """A float32 grey image scaled as the card says (``percentile``/``minmax`` to [0, 1], ``zscore``, ``none``)."""
    a = np.asarray(image, dtype=np.float32)
    kind = intensity.kind
    if kind == "none":
        return a
    if kind == "zscore":
        return (a - a.mean()) / max(float(a.std()), 1e-6)
    if kind == "percentile":
        low, high = np.percentile(a, [intensity.low or 0.0, 100.0 if intensity.high is None else intensity.high])
    elif kind == "minmax":
        low, high = float(a.min()), float(a.max())
    else:
        raise MedsegError(f"intensity {kind!r} is not supported for 2D graph models")
    return np.clip((a - low) / max(float(high - low), 1e-6), 0.0, 1.0)


def check_image_size(shape: Sequence[int], size: int, source: object = None) -> None:
    """Warn when an image is smaller than the model input (it gets up-sampled); refuse a tiny one."""
    smallest = min(int(s) for s in shape[:2])
    if max(int(s) for s in shape[:2]) * 4 < size:
        raise MedsegError(f"the image is {tuple(shape[:2])} pixels, too small for a {size}x{size} model input",
                          path=None if source is None else str(source),
                          hint="give the original-resolution radiograph, not a thumbnail")
    if smallest < size:
        logger.warning("%s: image %s is smaller than the %dx%d model input; it is up-sampled, which may cost "
                       "accuracy", source or "image", tuple(shape[:2]), size, size)


def prepare_input(image: np.ndarray, card, source: object = None) -> tuple[torch.Tensor, Letterbox]:
    """(1, 1, S, S) network input and the letterbox that maps its points back to ``image``'s pixels."""
    grey = to_grey(image)
    size = int(card.roi_size[0])
    if card.roi_size[0] != card.roi_size[1]:
        raise MedsegError(f"graph models need a square input, the card says {tuple(card.roi_size)}")
    check_image_size(grey.shape, size, source)
    box = Letterbox(grey.shape[0], grey.shape[1], size)
    return torch.from_numpy(box.apply(normalise_image(grey, card.intensity)))[None, None], box


def positions_to_pixels(positions: np.ndarray, size: int) -> np.ndarray:
    """Normalised network positions (pixel edges at 0 and 1) -> (x, y) pixels of the ``size``-pixel input."""
    return np.asarray(positions, np.float64) * size - 0.5


def pixels_to_positions(points: np.ndarray, size: int) -> np.ndarray:
    """(x, y) pixels of the input -> normalised network positions."""
    return (np.asarray(points, np.float64) + 0.5) / size


@torch.no_grad()
def predict_graph(model: nn.Module, image_2d: np.ndarray, *, source: object = None) -> dict[str, np.ndarray]:
    """Landmark contours ``{organ: (N, 2) float (x, y)}`` in pixels of ``image_2d``.

    ``image_2d``: (H, W) grey, or (H, W, 3|4) / (3|4, H, W) colour (converted to grey), any numeric dtype.
    The image is normalised per the model card, letterboxed to the card's ``roi_size`` and the output
    mapped back, so points land on the original pixels whatever the image size.
    """
    from medseg.models._registry import card_of

    card = card_of(model)
    template = template_from_card(card)
    x, box = prepare_input(image_2d, card, source)
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        out = model(x.to(device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
    points = box.to_original(positions_to_pixels(out[0].float().cpu().numpy(), box.size))
    return {name: np.ascontiguousarray(p) for name, p in template.split(points).items()}


def graph_to_mask(graph: Mapping[str, np.ndarray], shape: Sequence[int],
                  organs: Sequence[str] | None = None) -> np.ndarray:
    """Rasterise contours to a uint8 ``[row, col]`` label map: ``organs[k]`` (default: graph order) -> ``k + 1``."""
    return landmarks_to_mask(graph, shape, order=organs)


def write_landmarks_json(path: str | PathLike, graph: Mapping[str, np.ndarray], *, image_shape: Sequence[int],
                         model: str = "", source: str | PathLike | None = None,
                         organs: Sequence[str] | None = None) -> None:
    """Write the landmark graph as JSON (atomically): per organ its mask label and ordered (x, y) points."""
    names = list(organs or graph)
    doc = {
        "format": FORMAT,
        "version": 1,
        "model": model,
        "source": None if source is None else str(source),
        "image_size": {"height": int(image_shape[0]), "width": int(image_shape[1])},
        "coordinates": COORDINATES,
        "organs": {
            name: {"label": k + 1, "points": np.round(np.asarray(graph[name], np.float64), 3).tolist()}
            for k, name in enumerate(names)
        },
    }
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")


def read_landmarks_json(path: str | PathLike) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
    """``({organ: (N, 2) points}, (height, width))`` from a file written by :func:`write_landmarks_json`."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
        graph = {name: np.asarray(o["points"], np.float64).reshape(-1, 2) for name, o in doc["organs"].items()}
        shape = (int(doc["image_size"]["height"]), int(doc["image_size"]["width"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MedsegError(f"not a medseg landmark file ({type(exc).__name__}: {exc})", path=path) from exc
    return graph, shape
