"""The one-call Python API: the CLI, notebooks and scripts all come through here.

Orchestration only: load the model once, hand scans to :mod:`medseg.inference`, return or write results.

Example::

    import medseg
    labels = medseg.predict("scan.nii.gz")                     # MetaTensor, the scan's geometry
    labels = medseg.predict(image, model="stunet_t.hippocampus", device="cpu", fast=True)
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from typing import Any

import torch
from monai.data import MetaTensor
from torch import nn

from medseg.core.card import ModelCard
from medseg.inference.batch import BatchEvent, BatchSummary
from medseg.inference.model_loading import load_model
from medseg.inference.postprocess import PostprocessSpec
from medseg.inference.predictor import Prediction, PredictOptions, Predictor
from medseg.inference.runtime import cpu_runtime
from medseg.io import read_image
from medseg.models.heads import head_for

ModelArg = str | nn.Module | None


def _postprocess_spec(card_values: Mapping[str, Any], postprocess: Mapping[str, Any] | bool | None) -> PostprocessSpec:
    if postprocess is False:
        return PostprocessSpec()
    if postprocess is None or postprocess is True:
        return PostprocessSpec.from_mapping(card_values)
    return PostprocessSpec.from_mapping({**dict(card_values), **dict(postprocess)})


def cascade_card(net: nn.Module) -> ModelCard:
    """A stage network's card (cascade stages are built by the registry, so they carry one)."""
    card = getattr(net, "card", None)
    assert isinstance(card, ModelCard)
    return card


def _device_for_rank(device: str) -> str:
    local = os.environ.get("LOCAL_RANK")
    if local is not None and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{int(local)}"
    return device


def build_predictor(model: ModelArg = None, *, device: str = "auto", overlap: float = 0.5, tta: bool | None = None,
                    fast: bool = False, batch_size: int | None = None,
                    postprocess: Mapping[str, Any] | bool | None = None,
                    probabilities: bool = False, weights_dir: str | PathLike | None = None,
                    checkpoint: str | PathLike | None = None, threads: int | None = None,
                    amp: bool = True, backend: str = "auto", precision: str = "auto",
                    threshold: float | None = None, save_soft: bool | None = None,
                    max_voxels: int | None = None, force: bool = False,
                    calibration: str | PathLike | None = None, crop: str | None = None, quality: bool = True,
                    flag_below: float = 0.8) -> Predictor:
    """The one predictor factory (the CLI's ``medseg predict`` calls it with the same defaults): a model name,
    ``name.tag``, nn.Module with ``.card``, or the default becomes a :class:`Predictor`; ``cascade.<recipe>``
    (or a cascade recipe ``.toml``) a two-stage cascade (:mod:`medseg.cascade`; its ``checkpoint`` is a folder
    with ``stage1/best.pt`` + ``stage2/best.pt`` or a pair of files); a graph (landmark) model a
    :class:`~medseg.inference.graph.GraphPredictor`; an nnU-Net v2 result folder (or a name from ``models
    import-folder``) a :class:`~medseg.nnunet.standard.NnUNetPredictor` (default arithmetic, every fold).

    ``backend``/``precision`` choose how windows run on a CPU (:func:`medseg.backends.get_predictor`:
    ``auto`` = OpenVINO fp32 when the ``cpu`` extra is installed, checked against PyTorch on the first windows
    of every model, :mod:`medseg.inference.runtime`); GPU windows always run in PyTorch (AMP). ``threshold``:
    foreground probability of sigmoid and regression (SAUNA) models (default: the card's, else 0.5);
    ``save_soft``: keep a SAUNA model's soft map (``Prediction.soft``, written as ``CASE_soft.nii.gz``;
    default: the card's). ``max_voxels``: refuse scans whose grid at the model's spacing is larger
    (default: what free memory holds); ``force``: run scans the preflight refuses (size, field of view, modality;
    :mod:`medseg.inference.preflight`). ``calibration``: scans for ``precision="int8"`` (default: the model's
    training cases when its recipe's dataset is on this machine; :mod:`medseg.backends.calibration`).
    ``crop``: ``body``, ``nonzero`` or ``none`` (where windows go on whole scans, :mod:`medseg.inference.crop`;
    default: the card's, else body for CT models, nonzero for the rest).
    ``quality``: per-structure quality estimates (``Prediction.quality``, the sidecar's ``quality``;
    :mod:`medseg.quality`), flagged below ``flag_below`` predicted Dice."""
    if fast and precision == "auto":
        precision = "bf16"   # what --fast costs: see benchmarks/README.md, "Fast CPU inference"
    if isinstance(model, str) and (model.startswith("cascade.") or model.endswith(".toml")):  # two stages, one name
        from medseg.cascade.predictor import build_cascade_predictor

        cascade = build_cascade_predictor(str(model), checkpoint=checkpoint, device=_device_for_rank(device),
                                          overlap=overlap, tta=tta, fast=fast, batch_size=batch_size,
                                          postprocess=postprocess, probabilities=probabilities, threads=threads,
                                          amp=amp, threshold=threshold, save_soft=save_soft)
        if cascade.device.type == "cpu":
            for stage, net in (("stage1", cascade.pipeline.stage1), ("stage2", cascade.pipeline.stage2)):
                runner = cpu_runtime(net, cascade_card(net), backend=backend, precision=precision,
                                     batch_size=cascade.pipeline.sw_batch_size)
                if runner is not None:
                    cascade.pipeline.runners[stage] = runner
        return cascade
    if isinstance(model, str):  # an nnU-Net v2 result folder (or a name from `models import-folder`)
        from medseg.nnunet.cli import is_nnunet_model

        if is_nnunet_model(model):
            from medseg.nnunet.standard import build_folder_predictor

            return build_folder_predictor(model, tta=False if fast else tta, threads=threads,  # type: ignore[return-value]
                                          backend=backend, precision=precision, crop=crop)
    net, card, info = load_model(model, weights_dir=weights_dir, checkpoint=checkpoint)
    if not head_for(card).dense:   # landmark models: contours filled into a mask
        from medseg.inference.graph import GraphPredictor

        return GraphPredictor(net, card, info, device=_device_for_rank(device))  # type: ignore[return-value]
    options = PredictOptions(
        overlap=overlap, tta=tta, fast=fast, batch_size=batch_size, device=_device_for_rank(device), amp=amp,
        probabilities=probabilities, postprocess=_postprocess_spec(card.postprocess, postprocess), threads=threads,
        threshold=threshold, save_soft=save_soft, max_voxels=max_voxels, force=force, crop=crop, quality=quality,
        flag_below=flag_below,
    )
    predictor = Predictor(net, card, options, info)
    if predictor.device.type == "cpu" and card.spatial_dims == 3:
        predictor.cpu_network = cpu_runtime(net, card, backend=backend, precision=precision,
                                            batch_size=predictor.options.batch_size or 1,
                                            calibration=calibration, weights_file=info.weights_file)
    return predictor


def predict(image_or_path: str | PathLike | torch.Tensor, model: ModelArg = None, *, frame: int | None = None,
            return_prediction: bool = False, progress: Callable[[int, int], None] | None = None,
            **settings: Any) -> MetaTensor | Prediction:
    """Segment one scan and return its label map in the scan's own geometry.

    Args:
        image_or_path: a file/DICOM folder path, or a channel-first (Meta)Tensor (its affine is kept).
        model: ``"name.tag"``, an ``nn.Module`` with ``.card``, or None for the shipped default.
        frame: for 4D files, the frame to segment.
        return_prediction: return the full :class:`Prediction` (probabilities, timings, settings).
        progress: ``progress(windows_done, windows_total)``.
        **settings: ``device``, ``overlap``, ``tta``, ``fast``, ``batch_size``, ``postprocess``,
            ``probabilities``, ``weights_dir``, ``checkpoint``, ``threads``, ``amp``, ``threshold``,
            ``save_soft`` (see build_predictor).

    Returns:
        A ``(1, *spatial)`` integer MetaTensor with the input's affine; ``meta["labels"]`` names the values.
    """
    predictor = model if isinstance(model, Predictor) else build_predictor(model, **settings)
    image: torch.Tensor
    if isinstance(image_or_path, (str, PathLike)):
        image = read_image(image_or_path, frame=frame, allow_multichannel=predictor.card.in_channels > 1)
        path = str(image_or_path)
    else:
        image, path = image_or_path, None
    prediction = predictor.predict(image, path=path, progress=progress)
    return prediction if return_prediction else prediction.labels


def predict_files(inputs: Sequence[str | PathLike], output: str | PathLike | None = None, model: ModelArg = None, *,
                  output_type: str = "multilabel", output_format: str | None = None, stats: bool = False,
                  resume: bool = False,
                  shard: str | tuple[int, int] | None = None, frame: int | None = None,
                  series: str | None = None, progress: Callable[[BatchEvent], None] | None = None,
                  predictor: Predictor | None = None, **settings: Any) -> BatchSummary:
    """Segment files and folders, writing results (see :mod:`medseg.inference.cases` for naming).

    Args:
        shard: ``"i/n"`` or ``(i, n)`` to take every n-th case from i; default: torchrun's RANK/WORLD_SIZE.
        resume: skip cases whose outputs and sidecar are complete for the same model and parameters;
            concurrent resumed runs on one folder split the cases (a claim file per output).
        series: for DICOM folders holding several series, the SeriesInstanceUID to read.
        predictor: an already-built predictor (else ``model`` and ``**settings`` build one).
        output_format: ``image`` (the format of ``output``/the input), ``dicom-seg`` or ``rtstruct`` (one
            ``.dcm`` object per DICOM series input); None: ``dicom-seg`` when ``output`` ends in ``.dcm``.

    Returns:
        The per-case results; ``summary.exit_code`` is 1 if any case failed.
    """
    from medseg.inference.files import plan, run_files

    cases, output_format = plan(inputs, output, output_type=output_type, output_format=output_format, shard=shard)
    predictor = predictor or build_predictor(model, **settings)
    return run_files(predictor, cases, output_format=output_format, output_type=output_type, stats=stats,
                     resume=resume, frame=frame, series=series, progress=progress)
