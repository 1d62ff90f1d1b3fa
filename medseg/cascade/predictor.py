"""A cascade behind the ordinary :class:`~medseg.inference.predictor.Predictor` interface, so ``medseg predict
--model cascade.<name>`` and ``medseg.api.predict`` run it as one model: same checks, batch loop, atomic
output writing and provenance sidecar; the result is in the scan's own geometry.

Per scan: checks -> reorientation to the stage cards' frame (stage spacings are handled by the pipeline)
-> :class:`CascadePipeline` -> labels mapped back to the input grid -> the usual postprocessing. An organ
stage 1 does not find is reported ("not found": a log warning, the sidecar's warnings) with an empty mask.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation

from medseg.cascade.cascade_training import load_cascade_recipe
from medseg.cascade.loader import (
    PREFIX,
    recipe_path,
    regional_stage,
    stage_model,
    stage_weights,
)
from medseg.cascade.pipeline import CascadePipeline
from medseg.core.errors import MedsegError
from medseg.core.hashing import sha256_file
from medseg.core.log import get_logger
from medseg.inference.checks import check_dimensions, check_modality, match_channels
from medseg.inference.postprocess import PostprocessSpec, postprocess_labels
from medseg.inference.prediction import ModelInfo
from medseg.inference.predictor import Prediction, PredictOptions, Predictor
from medseg.inference.restore import labels_to_grid
from medseg.inference.sliding_window import auto_batch_size

log = get_logger(__name__)
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


class CascadePredictor(Predictor):
    """Runs a :class:`CascadePipeline`; ``card`` is stage 1's (input channels, labels) renamed to the cascade.

    Sliding-window overlap and batch size come from the options; mirroring TTA and probability maps are
    not offered for cascades (stage 2's fused probabilities exist only inside each organ's ROI)."""

    def __init__(self, pipeline: CascadePipeline, name: str, options: PredictOptions, info: ModelInfo,
                 stages: Mapping[str, Any] | None = None) -> None:
        if options.probabilities:
            raise MedsegError("probability maps are not offered for cascades", hint="drop --probabilities")
        card = pipeline.card1.replace(name=name, description=f"cascade {pipeline.card1.name} -> {pipeline.card2.name}",
                                      pretrained=())
        super().__init__(pipeline.stage1, card, options, info)
        if options.tta:
            log.info("%s: mirroring TTA is not applied by cascades", name)
        self.tta = False
        self.pipeline = pipeline
        pipeline.stage2.to(self.device)
        pipeline.overlap = self.overlap
        pipeline.amp = self.options.amp and self.device.type == "cuda"
        # windows per forward pass as the plain predictor picks them (batched conv3d is ~3x cheaper per
        # window on a CPU than one window at a time)
        pipeline.sw_batch_size = options.batch_size or auto_batch_size(
            pipeline.card2.out_channels, tuple(pipeline.card2.roi_size), self.device.type)
        self.stages = dict(stages or {})

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        runners = {k: (r.describe() if hasattr(r, "describe") else type(r).__name__)
                   for k, r in self.pipeline.runners.items()}
        out.update(mirror_axes=[], cpu_runtime=runners or "torch fp32",
                   cascade={"stages": self.stages, "targets": self.pipeline.targets,
                                            "margin_mm": self.pipeline.margin_mm, "sigma_mm": self.pipeline.sigma_mm})
        return out

    def predict(self, image: torch.Tensor, *, path: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> Prediction:
        """Segment one channel-first image; see the module docstring."""
        t0 = time.perf_counter()
        if not isinstance(image, MetaTensor):
            image = MetaTensor(image)
        path = path or image.meta.get("filename_or_obj")
        check_dimensions(image, self.card, path)
        source, warnings = match_channels(image, self.card, path)
        warnings += check_modality(source, self.card, path)
        for message in warnings:
            log.warning(message)
        if source.ndim != 4:
            raise MedsegError("cascades segment 3D scans", path=path)
        oriented = (Orientation(axcodes=self.card.orientation, labels=RAS_LABELS)(source)
                    if self.card.orientation else source)
        model_affine = np.asarray(oriented.affine, dtype=np.float64)
        if progress:
            progress(0, 1)
        result = self.pipeline(oriented.as_tensor().float(), model_affine)
        if progress:
            progress(1, 1)
        input_affine = np.asarray(image.affine, dtype=np.float64)
        labels = labels_to_grid(result.label[0], model_affine, tuple(image.shape[1:]), input_affine)
        spacing = np.linalg.norm(input_affine[:3, :3], axis=0)
        labels_np = postprocess_labels(labels.numpy(), self.postprocess, spacing=spacing, names=self.label_names)
        for organ in result.not_found:
            warnings.append(f"{organ}: not found (stage 1 found no {organ}); its mask is empty")
        out = MetaTensor(torch.from_numpy(labels_np)[None], affine=torch.as_tensor(input_affine),
                         meta={"labels": list(self.label_names), "model": self.info.full_name,
                               "filename_or_obj": path or ""})
        settings = {**self.settings(), "found": dict(result.found), "counters": dict(result.counters),
                    "rois": {k: {"start": list(r.start), "stop": list(r.stop)} for k, r in result.rois.items()}}
        return Prediction(out, self.label_names, None, settings, {"total_s": time.perf_counter() - t0}, warnings)


def _postprocess(card_values: Mapping[str, Any], postprocess: Mapping[str, Any] | bool | None) -> PostprocessSpec:
    if postprocess is False:
        return PostprocessSpec()
    if postprocess is None or postprocess is True:
        return PostprocessSpec.from_mapping(card_values)
    return PostprocessSpec.from_mapping({**dict(card_values), **dict(postprocess)})


def build_cascade_predictor(name: str, *, checkpoint: str | PathLike | Sequence[str | PathLike] | None = None,
                            device: str = "auto", overlap: float = 0.25, tta: bool | None = None, fast: bool = False,
                            batch_size: int | None = None, postprocess: Mapping[str, Any] | bool | None = None,
                            probabilities: bool = False, threads: int | None = None, amp: bool = True,
                            threshold: float | None = None, save_soft: bool | None = None) -> CascadePredictor:
    """Load ``cascade.<name>`` (or a cascade recipe path) with its two stage models into a predictor
    (:func:`medseg.api.build_predictor` adds the CPU backend to each stage). ``threshold`` / ``save_soft``
    are refused with the plain predictor's one-line errors (cascade stages are softmax models).

    ``checkpoint``: a folder with ``stage1/best.pt`` and ``stage2/best.pt`` (+ ``regional/best.pt`` when the
    recipe sets ``superpixels = true``), or a ``(stage1, stage2[, regional])`` tuple; default: the recipe's
    ``stageN.train.output/best.pt`` (relative to the current directory) and ``<regional output>/best.pt``."""
    path = recipe_path(name)
    recipe = load_cascade_recipe(path)
    w1, w2 = stage_weights(recipe, checkpoint)
    s1 = stage_model(recipe.stage1, w1)
    s2 = stage_model(recipe.stage2, w2, in_extra=len(s1.card.labels) - 1, labels=s1.card.labels)
    regional, w3 = regional_stage(recipe, s2, checkpoint)
    pipeline = CascadePipeline(s1, s2, targets=recipe.targets or None, margin_mm=recipe.margin_mm,
                               sigma_mm=recipe.sigma_mm, regional=regional)
    digests = {"stage1": sha256_file(w1), "stage2": sha256_file(w2)}
    if w3 is not None:
        digests["regional"] = sha256_file(w3)
    full = name if name.startswith(PREFIX) else PREFIX + Path(name).stem
    info = ModelInfo("cascade", full[len(PREFIX):], hashlib.sha256("".join(digests.values()).encode()).hexdigest(),
                     f"stage1={w1}; stage2={w2}" + (f"; regional={w3}" if w3 is not None else ""))
    options = PredictOptions(overlap=overlap, tta=False if tta is None else tta, fast=fast, batch_size=batch_size,
                             device=device, amp=amp, probabilities=probabilities,
                             postprocess=_postprocess(s1.card.postprocess, postprocess), threads=threads,
                             threshold=threshold, save_soft=save_soft)
    stages = {k: {"weights": str(w), "sha256": digests[k], "model": m.card.name, "spacing": m.card.spacing,
                  "roi_size": list(m.card.roi_size)} for k, w, m in (("stage1", w1, s1), ("stage2", w2, s2))}
    if w3 is not None:
        stages["regional"] = {"weights": str(w3), "sha256": digests["regional"], "model": "zoom_out_net",
                              "n_segments": regional.n_segments, "scales": list(regional.scales)}
    log.info("cascade %s: stage 1 %s, stage 2 %s%s (recipe %s)", full, w1, w2,
             f", regional {w3}" if w3 is not None else "", path)
    return CascadePredictor(pipeline, full, options, info, stages)
