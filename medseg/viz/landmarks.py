"""HybridGNet's output on the X-ray: landmark nodes and the contour edges of the model's graph template."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any

import numpy as np

from medseg.core.errors import MedsegError
from medseg.viz.colors import label_color

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Graph = Mapping[str, np.ndarray]


def _image2d(image: Any) -> np.ndarray:
    """An (H, W) grey array indexed [row, col] from a path, a medseg 2D MetaTensor (C, x, y) or an array."""
    from medseg.transforms.landmarks import to_grey

    if isinstance(image, (str, PathLike)):
        from medseg.io import read_image

        image = read_image(image)
    if hasattr(image, "affine") and hasattr(image, "detach"):          # medseg (C, x, y) -> [row, col, C]
        array = np.asarray(image.detach().cpu().numpy())
        if array.ndim != 3:
            raise MedsegError(f"expected a 2D image, got spatial shape {array.shape[1:]}")
        array = np.moveaxis(array, 0, -1).swapaxes(0, 1)
    else:
        array = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image)
    if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
        array = array.reshape(array.shape[1:] if array.shape[0] == 1 else array.shape[:-1])
    if array.ndim not in (2, 3):
        raise MedsegError(f"expected a 2D image (H, W) or colour (H, W, 3), got shape {array.shape}")
    return to_grey(array)


def _graph(landmarks: Any) -> tuple[dict[str, np.ndarray], tuple[int, int] | None]:
    if isinstance(landmarks, (str, PathLike)):
        from medseg.models.hybridgnet import read_landmarks_json

        graph, shape = read_landmarks_json(landmarks)
        return graph, shape
    if not isinstance(landmarks, Mapping):
        raise MedsegError("landmarks must be {organ: (N, 2) points} or a .landmarks.json path",
                          hint="medseg.models.hybridgnet.predict_graph returns the mapping")
    return {str(k): np.asarray(v, np.float64).reshape(-1, 2) for k, v in landmarks.items()}, None


def _template(template: Any, graph: Graph):
    """A GraphTemplate from a template, card, model (``.template`` / ``.card``) or, by default, the graph."""
    from medseg.models._graph import GraphTemplate, template_from_card

    if template is None:
        return GraphTemplate.from_pairs({name: len(points) for name, points in graph.items()})
    if isinstance(template, GraphTemplate):
        return template
    if hasattr(template, "template") and isinstance(template.template, GraphTemplate):
        return template.template
    card = getattr(template, "card", template)
    if isinstance(card, str):
        from medseg.models import get_card

        card = get_card(card)
    return template_from_card(card)


def undirected_edges(template) -> np.ndarray:
    """(E, 2) node pairs, each contour edge once, from the template's (both-direction) edge index."""
    src, dst = template.edge_index().numpy()
    keep = src < dst
    return np.stack([src[keep], dst[keep]], 1)


def landmark_overlay(image: Any, landmarks: Any, *, template: Any = None, reference: Any = None,
                     pixel_spacing: Sequence[float] | None = None, title: str | None = None, size: float = 5.0,
                     node_size: float = 12.0) -> Figure:
    """The image with each organ's landmarks (dots) and template edges (lines) in the organ's label colour.

    Args:
        image: the X-ray (path, 2D MetaTensor from ``read_image``, or an [row, col] array).
        landmarks: ``{organ: (N, 2) (x, y) pixels}`` (``predict_graph``) or a ``.landmarks.json`` path
            written by ``medseg predict``.
        template: a GraphTemplate, model card, model name or HybridGNet model, whose adjacency gives the
            edges; default: a closed contour per organ of the given points.
        reference: ground-truth landmarks in the same form, drawn as white dashed contours.
        pixel_spacing: (row, column) mm per pixel, for a true aspect when pixels are not square.

    Returns:
        The Figure (one axis; organ k coloured as label k + 1, matching the rasterised mask).
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    grey = _image2d(image)
    graph, shape = _graph(landmarks)
    if shape is not None and tuple(shape) != grey.shape[:2]:
        raise MedsegError(f"the landmarks were predicted on a {shape[0]}x{shape[1]} image, this one is "
                          f"{grey.shape[0]}x{grey.shape[1]}", hint="show them on the image that was segmented")
    tmpl = _template(template, graph)
    missing = [name for name in tmpl.names if name not in graph]
    if missing:
        raise MedsegError(f"the landmarks have no {', '.join(missing)} (template organs: {', '.join(tmpl.names)})")
    points = np.concatenate([np.asarray(graph[name], np.float64).reshape(-1, 2) for name in tmpl.names])
    if len(points) != tmpl.num_nodes:
        raise MedsegError(f"{len(points)} landmarks for a template of {tmpl.num_nodes} nodes "
                          f"({', '.join(f'{n} {c}' for n, c in tmpl.organs)})")
    rows, cols = grey.shape[:2]
    sy, sx = (1.0, 1.0) if pixel_spacing is None else (float(pixel_spacing[0]), float(pixel_spacing[1]))
    fig, ax = plt.subplots(figsize=(size * cols * sx / (rows * sy) + 0.2, size + 0.6))
    ax.imshow(grey, cmap="gray", extent=(-0.5, cols - 0.5, rows - 0.5, -0.5), aspect=sy / sx,
              interpolation="bilinear")
    edges = undirected_edges(tmpl)
    organ_of = np.repeat(np.arange(len(tmpl.names)), tmpl.counts)
    colours = [label_color(k + 1) for k in organ_of[edges[:, 0]]]
    ax.add_collection(LineCollection(points[edges], colors=colours, linewidths=1.5, label="_edges"))
    ax.scatter(points[:, 0], points[:, 1], s=node_size, c=[label_color(k + 1) for k in organ_of],
               edgecolors="black", linewidths=0.4, zorder=3)
    handles = [Line2D([], [], color=label_color(k + 1), marker="o", markeredgecolor="black", markersize=5,
                      label=f"{name} ({n} landmarks)") for k, (name, n) in enumerate(tmpl.organs)]
    if reference is not None:
        ref, _ = _graph(reference)
        for name in tmpl.names:
            if name in ref:
                closed = np.vstack([ref[name], ref[name][:1]])
                ax.plot(closed[:, 0], closed[:, 1], color="white", lw=1.0, ls="--")
        handles.append(Line2D([], [], color="white", ls="--", label="reference"))
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    legend = ax.legend(handles=handles, loc="lower center", fontsize=8, framealpha=0.6, facecolor="black")
    for text in legend.get_texts():
        text.set_color("white")
    ax.set_title(title or f"{tmpl.num_nodes} landmarks, {len(edges)} edges", fontsize=9)
    fig.tight_layout()
    return fig
