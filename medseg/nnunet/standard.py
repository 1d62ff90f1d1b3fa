"""An nnU-Net v2 folder behind medseg's predictor interface, so ``medseg predict --model FOLDER`` goes through
the standard batch path (:func:`medseg.inference.batch.run_batch`): provenance sidecars, ``--stats``,
``--resume`` with claims, ``--shard``, the output-onto-input refusal and the per-case failure table.

The batch path reads each case's first channel file as the reference image; :class:`NnUNetPredictor` reads
every channel itself the nnU-Net way (SimpleITK, file voxel order) and returns the labels on that image's grid.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError
from medseg.core.hashing import sha256_file, sha256_file_once
from medseg.inference.postprocess import PostprocessSpec
from medseg.inference.prediction import ModelInfo, Prediction, PredictOptions
from medseg.io.volume import labels_like
from medseg.nnunet.predictor import NnUNetModel

TORCH_ONLY = {"backend": ("auto", "torch"), "precision": ("auto", "fp32")}


def check_runtime(backend: str, precision: str, exact: bool = False) -> None:
    """``--exact`` runs nnU-Net's PyTorch fp32 arithmetic: refuse other runtimes with it in one line (never
    ignore them). The default path takes any CPU runtime (:meth:`NnUNetModel.use_runtime`)."""
    if not exact:
        return
    for option, value in (("backend", backend), ("precision", precision)):
        if value not in TORCH_ONLY[option]:
            raise MedsegError(f"--{option} {value} cannot be combined with --exact (nnU-Net's own arithmetic runs in "
                              "PyTorch fp32)", hint=f"drop --{option} or --exact")


def fold_digests(model: NnUNetModel, pins: dict[str, str] | None = None) -> dict[str, str]:
    """sha256 of every fold file used (pinned digests from ``models import-folder`` are reused: already checked)."""
    return {f.name: (pins or {}).get(f.name) or sha256_file_once(f.path) for f in model.folds}


def _card(model: NnUNetModel, name: str) -> ModelCard:
    values = model.labels.output_values
    names = tuple(model.labels.names.get(v, str(v)) for v in range(max(values) + 1))
    two_d = len(model.patch) == 2
    return ModelCard(name=name, spatial_dims=3, in_channels=model.in_channels, out_channels=model.labels.num_heads,
                     labels=names, channel_names=tuple(model.folder.channel_names),
                     activation="sigmoid" if model.labels.has_regions else "softmax",
                     roi_size=tuple((1, *model.patch) if two_d else model.patch),
                     spacing=tuple(float(s) for s in model.config["spacing"]),
                     mirror_axes=tuple(model.mirror_axes or ()), orientation=None,
                     description=f"nnU-Net v2 result folder {model.folder.path}")


class NnUNetPredictor:
    """``predict(image, path=..., progress=...) -> Prediction`` for an nnU-Net v2 result folder.

    Args:
        model: the loaded folder; name: what sidecars and ``--resume`` call it (folder name or imported name).
        exact: nnU-Net's own arithmetic; tta: mirroring; pins: fold sha256s from ``models import-folder``.
        channels: first channel file -> every channel file of its case (from :func:`.run.group_cases`).
    """

    plain_images = True   # the batch path hands it a medseg.io.Volume: only the grid is read from it (no MONAI)

    def __init__(self, model: NnUNetModel, *, name: str, exact: bool = False, tta: bool | None = True,
                 pins: dict[str, str] | None = None, channels: dict[Path, list[Path]] | None = None,
                 postprocess: bool = True) -> None:
        self.model, self.exact, self.tta = model, exact, tta
        self.apply_postprocessing = postprocess and bool(model.postprocessing)
        self.card = _card(model, name)
        self.folds = fold_digests(model, pins)
        # a cascade's previous stage (3d_lowres): its folder and fold sha256s go into the sidecar too
        self.previous = ({"folder": str(model.previous.folder.path), "configuration":
                          model.previous.folder.configuration, "fold_sha256": fold_digests(model.previous)}
                         if model.previous is not None else None)
        combined = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(self.folds.items())).encode()).hexdigest()
        self.info = ModelInfo(name, None, combined, str(model.folder.path))
        self.options = PredictOptions(tta=tta, device="cpu")
        self.overlap = 0.5
        self.postprocess = PostprocessSpec()
        self.device = torch.device("cpu")
        self.cpu_network = None
        self.save_soft = False
        self.channels = {Path(k).resolve(): [Path(f) for f in v] for k, v in (channels or {}).items()}

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.card.labels

    def output_parameters(self) -> dict[str, Any]:
        """What makes a result (compared by ``--resume``): the arithmetic, folds and checkpoint."""
        return {"nnunet": {"exact": self.exact, "folds": sorted(self.folds),
                           "checkpoint_name": self.model.folder.checkpoint_name,
                           "configuration": self.model.folder.configuration,
                           **({"previous_stage": self.previous} if self.previous else {}),
                           "postprocessing": ([list(step) for step in self.model.postprocessing]
                                              if self.apply_postprocessing else None)}}

    def settings(self) -> dict[str, Any]:
        """The resolved settings (recorded in the sidecar; ``run_record`` reads tta and mirror_axes)."""
        return {"device": "cpu", "overlap": self.overlap, "tta": self.tta,
                "mirror_axes": list(self.model.mirror_axes or ()) if self.tta else [],
                "fast": False, "probabilities": False, "postprocess": self.postprocess.to_dict(),
                "roi_size": list(self.card.roi_size), "arithmetic": "nnU-Net exact" if self.exact else "medseg engine",
                "nnunet_folder": str(self.model.folder.path), "fold_sha256": dict(self.folds),
                "postprocessing_file": (str(self.model.postprocessing_file) if self.apply_postprocessing else None),
                **self.output_parameters()}

    def files_for(self, path: str | Path) -> list[Path]:
        """Every channel file of the case whose first channel is ``path``."""
        return self.channels.get(Path(path).resolve(), [Path(path)])

    def predict(self, image: Any, *, path: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> Prediction:
        """Labels of the case at ``path`` (its channels read the nnU-Net way) on ``image``'s voxel grid."""
        import SimpleITK as sitk

        if path is None:
            raise MedsegError("nnU-Net folders predict files (their reader is nnU-Net's)",
                              hint="pass the case's file path")
        start = time.perf_counter()
        result = self.model.predict(self.files_for(path), exact=self.exact, tta=self.tta, progress=progress,
                                    postprocess=self.apply_postprocessing)
        seg = sitk.GetArrayFromImage(result)
        labels = np.ascontiguousarray(seg.transpose(tuple(range(seg.ndim - 1, -1, -1))))
        if tuple(labels.shape) != tuple(image.shape[1:]):
            raise MedsegError(f"labels of shape {labels.shape} do not fit the image {tuple(image.shape[1:])}",
                              path=path)
        dtype = np.uint8 if len(self.label_names) <= 256 else np.int16
        out = labels_like(image, labels.astype(dtype), {"labels": list(self.label_names),
                                                        "model": self.info.full_name, "filename_or_obj": str(path)})
        seconds = time.perf_counter() - start
        settings = {**self.settings(), **self.model.last_tta}   # the TTA this case got (tta=None: per case)
        others = self.files_for(path)[1:]
        if others:  # the sidecar's input is channel _0000; the other channels are pinned here
            settings["other_channels"] = {str(f): sha256_file(f) for f in others}
        return Prediction(out, self.label_names, None, settings, {"total_s": seconds, "inference_s": seconds})


def build_folder_predictor(model_ref: str, *, folds: Sequence[str] | None = None, checkpoint_name: str | None = None,
                           exact: bool = False, tta: bool | None = None, threads: int | None = None,
                           backend: str = "auto", precision: str = "auto",
                           channels: dict[Path, list[Path]] | None = None, postprocess: bool = True,
                           previous_stage: str | Path | None = None, crop: str | None = None) -> NnUNetPredictor:
    """The predictor of :func:`medseg.api.build_predictor` for a folder path or an imported name."""
    from medseg.inference.crop import check_crop_mode
    from medseg.nnunet.run import load_folder_model

    check_runtime(backend, precision, exact)
    if threads:
        torch.set_num_threads(threads)
    model, name, pins = load_folder_model(model_ref, folds=folds, checkpoint_name=checkpoint_name,
                                          previous_stage=previous_stage)
    check_crop_mode(crop)
    model.crop = crop or "body"   # CT folders: windows over the body ("none": the whole grid)
    predictor = NnUNetPredictor(model, name=name, exact=exact, tta=tta, pins=pins,
                                channels=channels, postprocess=postprocess)
    if not exact:  # default path: OpenVINO fp32 when installed, guarded per fold network (see use_runtime)
        predictor.cpu_network = model.use_runtime(backend, precision)
    return predictor
