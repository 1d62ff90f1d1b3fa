"""Predictor: one loaded model that turns scans into label maps in the scans' own geometry.

Per scan: checks -> card preprocessing -> sliding-window engine (with the out-of-memory ladder) ->
labels mapped back to the input grid -> postprocessing. The model is loaded once and reused, so a
batch run or a notebook pays for it a single time.

Regression models (SAUNA soft labels: ``activation = "regression"``, ``card.postprocess["sauna"]``) are
stitched as a continuous map: windows become ``y = tanh(z)``, the Gaussian-weighted mean of y is kept as
``p = (y + 1) / 2``, interpolated linearly onto the input grid and thresholded there (``p > threshold``,
0.5 = the official rule ``y > 0``), so the mask is exactly the thresholded soft map.
"""
from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from monai.data import MetaTensor
from torch import nn

from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.inference.checks import check_dimensions, match_channels
from medseg.inference.crop import CropBox, bounding_box, check_crop_mode, crop_mode, scan_mask
from medseg.inference.devices import (
    Placement,
    describe_device,
    placements_for,
    resolve_device,
    run_with_fallback,
    set_cpu_threads,
    torch_threads,
)
from medseg.inference.postprocess import PostprocessSpec, postprocess_labels
from medseg.inference.prediction import ModelInfo, Prediction, PredictOptions
from medseg.inference.preflight import (
    blank_reason,
    count_windows,
    default_tta,
    estimate_work,
    preflight_warnings,
    time_notice,
)
from medseg.inference.restore import labels_to_grid, probabilities_to_grid, soft_to_grid
from medseg.inference.segment import engine_options, segment
from medseg.inference.sliding_window import EngineOptions
from medseg.inference.stitcher import StitchResult
from medseg.models.heads import OutputHead, head_for, threshold_labels
from medseg.transforms import build_preprocessing

if TYPE_CHECKING:
    from medseg.quality.probe import QualityProbe

logger = get_logger(__name__)

MAX_PROBABILITY_CLASSES = 16
FAST_OVERLAP = 0.25
GLUE_THREADS = 1   # torch threads beside a compiled CPU runtime (see devices.torch_threads)
SMALL_IMAGE_VALUES = 1 << 22   # images up to this size run their whole prediction with GLUE_THREADS


class Predictor:
    """A model ready to segment scans.

    Args:
        model: a network returning logits, with ``card`` describing it.
        card: the model card (defaults to ``model.card``).
        options: see :class:`PredictOptions`.
        info: provenance of the weights.
        cpu_network: optional drop-in for ``model(x)`` used when windows run on the CPU (same contract:
            ``(N, C, *roi)`` -> ``(N, K, *roi)`` float32 logits), e.g. a compiled-runtime predictor.
    """

    def __init__(self, model: nn.Module, card: ModelCard | None = None, options: PredictOptions | None = None,
                 info: ModelInfo | None = None, *, cpu_network: Callable[[torch.Tensor], torch.Tensor] | None = None
                 ) -> None:
        self.card: ModelCard = card if card is not None else cast(ModelCard, model.card)
        self.cpu_network = cpu_network  # e.g. an OpenVINO/ONNX Runtime runner used when windows run on the CPU
        self.options = options or PredictOptions()
        self.info = info or ModelInfo(self.card.name)
        self.head = head_for(self.card)
        if not self.head.dense:
            raise MedsegError(f"{self.card.name} is a {self.card.activation} model; this predictor makes label maps "
                              "from per-voxel outputs", hint="build it with medseg.api.build_predictor, which "
                              "routes graph models to their own predictor")
        self.threshold, self.save_soft = _output_options(self.head, self.options)
        if not 0.0 <= self.options.overlap < 1.0:
            raise MedsegError(f"overlap must be in [0, 1), got {self.options.overlap}")
        if self.options.probabilities and self.card.out_channels > MAX_PROBABILITY_CLASSES:
            raise MedsegError(
                f"probability maps are offered for at most {MAX_PROBABILITY_CLASSES} classes; "
                f"{self.card.name} has {self.card.out_channels}",
                hint="drop --probabilities, or use --output-type per-class for binary masks",
            )
        self.device = resolve_device(self.options.device)
        self.threads = set_cpu_threads(self.options.threads) if self.device.type == "cpu" else None
        self.tta = True if self.options.tta is None else bool(self.options.tta)
        self.overlap = self.options.overlap
        if self.options.fast:
            self.tta, self.overlap = False, min(self.overlap, FAST_OVERLAP)
        # None: decided per scan by default_tta (the card's policy, the CPU default for large scans)
        self.tta_requested: bool | None = None if self.options.tta is None and not self.options.fast else self.tta
        self.model = model.eval()
        self._model_device: torch.device | None = None
        self._batch_size = self.options.batch_size
        self._probe: QualityProbe | None = None
        self._to_device(self.device)
        self.postprocess = (self.options.postprocess if self.options.postprocess is not None
                            else PostprocessSpec.from_mapping(self.card.postprocess))
        check_crop_mode(self.options.crop)
        self.crop = self.options.crop or crop_mode(self.card)

    @property
    def label_names(self) -> tuple[str, ...]:
        """Class name per label value (0 = background)."""
        return self.head.label_names

    def settings(self) -> dict[str, Any]:
        """The resolved settings (recorded in provenance)."""
        return {
            "device": describe_device(self.device, self.threads), "overlap": self.overlap, "tta": self.tta,
            "mirror_axes": list(self.card.mirror_axes) if self.tta else [], "fast": self.options.fast,
            "batch_size": self.options.batch_size, "amp": self.options.amp and self.device.type == "cuda",
            "accumulate": self.options.accumulate, "probabilities": self.options.probabilities,
            "postprocess": self.postprocess.to_dict(), "roi_size": list(self.card.roi_size), "crop_mode": self.crop,
            **self.output_parameters(),
        }

    def output_parameters(self) -> dict[str, Any]:
        """Threshold (sigmoid/regression) and soft-map settings; empty for softmax models."""
        if not self.head.uses_threshold:
            return {}
        if not self.head.soft_output:
            return {"threshold": self.threshold}
        return {"threshold": self.threshold, "save_soft": self.save_soft,
                "output_activation": getattr(self.head, "activation", "tanh")}

    def _to_device(self, device: torch.device) -> None:
        if self._model_device == device:
            return
        self.model.to(device)
        if device.type == "cuda" and self.card.spatial_dims == 3:
            self.model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        self._model_device = device

    def predict(self, image: torch.Tensor, *, path: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> Prediction:
        """Segment one channel-first image (a MetaTensor from :func:`medseg.io.read_image`)."""
        small = image.numel() <= SMALL_IMAGE_VALUES   # its preprocessing and restore gain nothing from threads
        glue = small and self._compiled_on(placements_for(self.device)[0])
        with torch_threads(GLUE_THREADS) if glue else contextlib.nullcontext():
            return self._predict(image, path=path, progress=progress)

    def _predict(self, image: torch.Tensor, *, path: str | None,
                 progress: Callable[[int, int], None] | None) -> Prediction:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if not isinstance(image, MetaTensor):
            image = MetaTensor(image)
        path = path or image.meta.get("filename_or_obj")
        check_dimensions(image, self.card, path)
        spatial = image.ndim - 1
        source, warnings = match_channels(image, self.card, path)
        blank = blank_reason(source)
        if blank is not None:  # nothing to segment: an empty label map, not the model's guess on noise
            warnings.append(f"{path}: {blank}; nothing to segment, the label map is empty")
            for message in warnings:
                logger.warning(message)
            return self._empty(image, path, warnings, t0)
        tta, tta_reason = self.scan_tta(source)
        warnings += preflight_warnings(source, self.card, path, overlap=self.overlap, tta=tta,
                                       max_voxels=self.options.max_voxels, force=self.options.force)
        for message in warnings:
            logger.warning(message)
        domain: list[str] = []
        if self.options.quality:
            from medseg.quality.estimate import domain_problems

            domain = domain_problems(source, self.card)
        mask, box = self._scan_mask(source) if spatial == 3 else (None, None)
        data = {"image": source} if mask is None else {"image": source, "mask": mask}
        pre = build_preprocessing(self.card, spatial_dims=spatial, label_key=None if mask is None else "mask")(data)
        model_mask = None if mask is None else pre["mask"].as_tensor()[0] > 0
        pre = pre["image"]
        model_affine = np.asarray(pre.affine, dtype=np.float64)
        x = pre.as_tensor() if spatial == 3 else pre.as_tensor()[..., None]
        del pre, data, mask
        timings["preprocess_s"] = time.perf_counter() - t0
        progress = time_notice(progress, path, passes=self.passes(tta), fast_windows=self._fast_windows(x, model_mask))

        t1 = time.perf_counter()
        attempt = functools.partial(self._run, x, progress=progress, mask=model_mask, tta=tta)
        del x  # the partial holds the only reference; freed right after inference
        result, placement = run_with_fallback(attempt, placements_for(self.device), warnings.append)
        del attempt
        timings["inference_s"] = time.perf_counter() - t1
        quality = None
        if self.options.quality:
            tq = time.perf_counter()
            quality = self._quality(result, model_affine, spatial, domain)
            timings["quality_s"] = time.perf_counter() - tq

        t2 = time.perf_counter()
        input_affine = np.asarray(image.affine, dtype=np.float64)
        soft = None
        if self.head.soft_output:
            labels, soft = self._restore_soft(result, model_affine, tuple(image.shape[1:]), input_affine, spatial)
            probs, result.probabilities = None, None  # free the model-grid soft map
        else:
            labels, probs = self._restore(result, model_affine, tuple(image.shape[1:]), input_affine, spatial)
        if box is not None:  # outside the crop box is background, on the scan's own grid
            labels, probs = _outside_background(labels, probs, box, self.head.kind == "softmax")
        timings["restore_s"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        spacing = np.linalg.norm(input_affine[:3, :3], axis=0)
        labels_np = postprocess_labels(labels.numpy(), self.postprocess, spacing=spacing, names=self.label_names)
        timings["postprocess_s"] = time.perf_counter() - t3
        out = MetaTensor(torch.from_numpy(labels_np)[None], affine=torch.as_tensor(input_affine),
                         meta={"labels": list(self.label_names), "model": self.info.full_name,
                               "filename_or_obj": path or ""})
        glue = {"glue_threads": GLUE_THREADS} if self._compiled_on(placement) else {}
        settings = {**self.settings(), **glue, "placement": str(placement), "batch_size": self._batch_size,
                    "accumulate": result.accumulate, "peak_stitch_mib": round(result.peak_stitch_bytes / 2**20, 1),
                    "crop": box.to_dict() if box is not None else None,
                    "windows": {"run": result.windows_run, "skipped": result.windows_skipped},
                    "tta": tta, "tta_reason": tta_reason, "mirror_axes": list(self.card.mirror_axes) if tta else []}
        timings["total_s"] = time.perf_counter() - t0
        return Prediction(out, self.label_names, probs, settings, timings, warnings, soft=soft, quality=quality)

    def _quality(self, result: StitchResult, model_affine, spatial: int, domain: list[str]) -> dict[str, Any]:
        """Per-structure quality on the model grid (before mapping back: the frame the card's reference
        statistics were taken in)."""
        labels = result.labels.numpy() if spatial == 3 else result.labels[..., 0].numpy()
        spacing = np.linalg.norm(np.asarray(model_affine, dtype=np.float64)[:spatial, :spatial], axis=0)
        from medseg.quality.estimate import assess

        probe = self._probe.signals() if self._probe is not None else None
        return assess(labels, spacing, self.card, self.label_names, probe=probe, domain=domain,
                      flag_below=self.options.flag_below)

    def _empty(self, image: MetaTensor, path: str | None, warnings: list[str], t0: float) -> Prediction:
        """An all-background label map on the input grid (blank images: all zero, constant, all NaN)."""
        affine = torch.as_tensor(np.asarray(image.affine, dtype=np.float64))
        labels = MetaTensor(torch.zeros((1, *image.shape[1:]), dtype=torch.uint8), affine=affine,
                            meta={"labels": list(self.label_names), "model": self.info.full_name,
                                  "filename_or_obj": path or ""})
        settings = {**self.settings(), "placement": "none (blank image)"}
        return Prediction(labels, self.label_names, None, settings, {"total_s": time.perf_counter() - t0},
                          warnings)

    def scan_tta(self, image: torch.Tensor) -> tuple[bool, str]:
        """Mirroring TTA for this scan and why (:func:`~medseg.inference.preflight.default_tta`)."""
        if self.tta_requested is not None or image.ndim - 1 != 3 or self.card.spatial_dims != 3:
            return default_tta(self.tta_requested, self.card, windows=1, roi=self.card.roi_size)
        affine = np.asarray(getattr(image, "affine", np.eye(4)), dtype=np.float64)
        work = estimate_work(tuple(int(s) for s in image.shape[1:]), affine, self.card, overlap=self.overlap,
                             tta=False)
        return default_tta(None, self.card, windows=work.windows, roi=self.card.roi_size,
                           device=self.device.type)

    def passes(self, tta: bool) -> int:
        """Network passes per window: 2 ** mirrored axes with TTA, else 1."""
        return 2 ** len([a for a in self.card.mirror_axes if 0 <= a < self.card.spatial_dims]) if tta else 1

    def _fast_windows(self, x: torch.Tensor, mask: torch.Tensor | None) -> int | None:
        """Windows ``--fast`` would run (overlap 0.25 over the same crop box), for the time notice."""
        if self.card.spatial_dims != 3:
            return None
        shape = tuple(int(s) for s in x.shape[1:])
        if mask is not None:
            box = bounding_box(mask, "mask")
            shape = box.size if box is not None else shape
        return count_windows(shape, self.card.roi_size, min(self.overlap, FAST_OVERLAP))

    def _engine_options(self, placement: Placement, shape: tuple[int, ...], tta: bool | None = None) -> EngineOptions:
        return engine_options(
            self.card, shape, overlap=self.overlap, tta=self.tta if tta is None else tta,
            batch_size=self.options.batch_size,
            compute=placement.compute, stitch=placement.stitch, amp=self.options.amp,
            accumulate=self.options.accumulate, probabilities=self.options.probabilities, threshold=self.threshold)

    def _compiled_on(self, placement: Placement) -> bool:
        """Whether a compiled CPU runtime (not PyTorch, e.g. after a failed accuracy guard) runs the windows."""
        return (self.cpu_network is not None and placement.compute.type == "cpu"
                and getattr(self.cpu_network, "trusted", True))

    def _scan_mask(self, source: torch.Tensor) -> tuple[MetaTensor | None, CropBox | None]:
        """The body / non-zero mask of a 3D scan on its own grid (a MetaTensor preprocessing resamples with the
        image) and its box; (None, None) when the mode is "none" or the mask holds the whole grid."""
        mask = scan_mask(source, self.crop)
        if mask is None or bool(mask.all()):
            return None, None
        box = bounding_box(mask, self.crop)
        if box is None:  # nothing above the body threshold: run everything rather than guess
            return None, None
        affine = torch.as_tensor(np.asarray(getattr(source, "affine", np.eye(4)), dtype=np.float64))
        tensor = MetaTensor(torch.from_numpy(mask[None].astype(np.uint8)), affine=affine)
        return tensor, box

    def _run(self, x: torch.Tensor, placement: Placement, progress=None,
             mask: torch.Tensor | None = None, tta: bool | None = None) -> StitchResult:
        self._to_device(placement.compute)
        options = self._engine_options(placement, tuple(x.shape[1:]), tta)
        self._batch_size = options.batch_size
        compiled = self._compiled_on(placement)
        runner = self.cpu_network if compiled and self.cpu_network is not None else self.model
        self._probe = None
        if self.options.quality and self.head.kind == "softmax":
            from medseg.quality.probe import QualityProbe

            self._probe = QualityProbe(self.card.out_channels, options.roi)
        # a compiled runtime has its own threads: torch's glue (flips, blending, argmax) keeps to one
        with torch_threads(GLUE_THREADS) if compiled else contextlib.nullcontext():
            return segment(runner, self.card, x, options, head=self.head, progress=progress, mask=mask,
                           probe=self._probe)

    def _restore(self, result: StitchResult, model_affine, shape, input_affine, spatial):
        if spatial == 2:  # 2D images are not resampled: the model grid is the input grid
            probs = result.probabilities[..., 0] if result.probabilities is not None else None
            return result.labels[..., 0], probs
        labels = labels_to_grid(result.labels, model_affine, shape, input_affine)
        probs = None
        if result.probabilities is not None:
            probs = probabilities_to_grid(result.probabilities, model_affine, shape, input_affine)
        return labels, probs

    def _restore_soft(self, result: StitchResult, model_affine, shape, input_affine, spatial):
        """Regression models: labels = the soft map thresholded on the input grid (and the map, if kept)."""
        soft = result.probabilities
        assert soft is not None, "a soft-output head always keeps its map"
        if spatial == 2:  # no resampling: the stitcher's labels are the thresholded float16 map
            return result.labels[..., 0], (soft[..., 0].float() if self.save_soft else None)
        decide = functools.partial(threshold_labels, threshold=self.threshold, dtype=result.labels.dtype)
        return soft_to_grid(soft, model_affine, shape, input_affine, decide=decide,
                            label_dtype=result.labels.dtype, keep=self.save_soft)


def _outside_background(labels: torch.Tensor, probs: torch.Tensor | None, box: CropBox,
                        softmax: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels (and probabilities) with everything outside ``box`` set to background."""
    inside = torch.zeros(labels.shape, dtype=torch.bool)
    inside[box.slices] = True
    labels = labels.masked_fill(~inside, 0)
    if probs is not None:
        probs = probs.masked_fill(~inside, 0)
        if softmax:
            probs[0].masked_fill_(~inside, 1)
    return labels, probs


def _output_options(head: OutputHead, options: PredictOptions) -> tuple[float, bool]:
    """Resolve (threshold, save_soft) from the options and the card (through its head)."""
    card = head.card
    if options.threshold is not None and not head.uses_threshold:
        raise MedsegError(f"--threshold applies to sigmoid and regression (SAUNA) models; {card.name} is a "
                          f"{card.activation} model (its labels are the argmax)", hint="drop --threshold")
    threshold = float(head.default_threshold if options.threshold is None else options.threshold)
    if not 0.0 < threshold < 1.0:
        raise MedsegError(f"threshold must lie strictly between 0 and 1, got {threshold:g}",
                          hint="it is a foreground probability: 0.5 is the default (for SAUNA: signed output > 0)")
    save_soft = bool(getattr(head, "save_soft", False)) if options.save_soft is None else bool(options.save_soft)
    if save_soft and not head.soft_output:
        raise MedsegError(f"--save-soft writes the soft map of regression (SAUNA) models; {card.name} is a "
                          f"{card.activation} model", hint="use --probabilities for its per-class probability maps")
    if options.probabilities and head.soft_output:
        raise MedsegError(f"{card.name} is a regression (SAUNA) model: its soft map replaces probabilities",
                          hint="use --save-soft instead of --probabilities")
    return threshold, save_soft
