"""A TotalSegmentator task behind medseg's predictor interface, so ``--model totalsegmentator`` goes through the
standard batch path (:func:`medseg.inference.batch.run_batch`): provenance sidecar (every part's fold sha256),
``--stats``, DICOM-SEG/RTSTRUCT outputs, ``--resume``/``--shard`` and the per-case failure table.

Every part folder and its label set is checked when the predictor is built, before any scan is read.
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
from medseg.core.hashing import sha256_file_once
from medseg.inference.postprocess import PostprocessSpec
from medseg.inference.prediction import ModelInfo, Prediction, PredictOptions
from medseg.io.volume import labels_like
from medseg.totalseg.pipeline import FOLD, STEP, Runtime, predict, read_parts
from medseg.totalseg.tasks import Task, locate, parse_task

CROP_TASK = "total_fastest"   # TotalSegmentator crops a --roi_subset run with its 6 mm model


class TotalSegPredictor:
    """``predict(image, path=..., progress=...) -> Prediction`` for a TotalSegmentator task's part folders.

    Args:
        task: the task (``parse_task``); part_dirs: its folders in merge order (``locate``);
        subset: only these labels (``--labels``); crop_dirs: the 6 mm model's folders to crop a subset run
        by (None: no crop); exact: nnU-Net's own arithmetic in PyTorch fp32 (float16 logits of the whole scan);
        runtime: the CPU runtime of the default path's windows (``--backend``/``--precision``).
    """

    plain_images = True   # the batch path hands it a medseg.io.Volume: only the grid is read from it (no MONAI)

    def __init__(self, task: Task, part_dirs: Sequence[Path], *, subset: Sequence[str] | None = None,
                 crop_dirs: Sequence[Path] | None = None, exact: bool = False, batch_size: int | None = None,
                 runtime: Runtime | None = None) -> None:
        from medseg.nnunet.folder import read_folder
        from medseg.totalseg.pipeline import merged_names

        self.task, self.part_dirs, self.exact = task, [Path(p) for p in part_dirs], exact
        self.subset = list(subset) if subset else None
        self.crop_dirs = [Path(p) for p in crop_dirs] if (crop_dirs and self.subset) else None
        self.batch_size = batch_size or 4
        self.runtime = runtime or Runtime()
        self.last_runs: list[str] = []
        parts = read_parts(self.part_dirs, [p.labels for p in task.parts], task.name)
        names = merged_names(parts)
        if self.subset:
            unknown = [n for n in self.subset if n not in names]
            if unknown:
                raise MedsegError(f"--labels {', '.join(unknown)}: not a label of TotalSegmentator's "
                                  f"{task.name!r} task", hint=f"labels: {', '.join(names[1:])}")
            names = [n if (i == 0 or n in self.subset) else "" for i, n in enumerate(names)]
        if self.crop_dirs:
            read_parts(self.crop_dirs, [p.labels for p in parse_task(f"totalsegmentator:{CROP_TASK}").parts],
                       CROP_TASK)
        self.names = tuple(names)
        self.folds = {f"{d.parent.name}/fold_{FOLD}": sha256_file_once(d / f"fold_{FOLD}" / "checkpoint_final.pth")
                      for d in self.part_dirs + (self.crop_dirs or []) if (d / f"fold_{FOLD}").is_dir()}
        combined = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(self.folds.items())).encode()).hexdigest()
        name = f"totalsegmentator:{task.name}"
        self.info = ModelInfo(name, None, combined, str(self.part_dirs[0].parent.parent))
        patch = read_folder(self.part_dirs[0]).plans["configurations"]["3d_fullres"].get("patch_size", [128] * 3)
        self.card = ModelCard(name=name, spatial_dims=3, in_channels=1, out_channels=len(self.names),
                              labels=self.names, channel_names=("CT",), activation="softmax",
                              roi_size=tuple(int(p) for p in patch), spacing=(task.spacing_mm,) * 3,
                              mirror_axes=(), orientation=None,
                              description=f"TotalSegmentator task {task.name} ({len(self.part_dirs)} part folders)")
        self.options = PredictOptions(tta=False, device="cpu")
        self.overlap = 1.0 - STEP
        self.tta = False
        self.postprocess = PostprocessSpec()
        self.device = torch.device("cpu")
        self.cpu_network = None
        self.save_soft = False

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.names

    def output_parameters(self) -> dict[str, Any]:
        """What makes a result (compared by ``--resume``)."""
        return {"totalsegmentator": {"task": self.task.name, "labels": self.subset, "exact": self.exact,
                                     "crop": CROP_TASK if self.crop_dirs else None}}

    def settings(self) -> dict[str, Any]:
        """The resolved settings recorded in the sidecar."""
        return {"device": "cpu", "overlap": self.overlap, "tta": False, "mirror_axes": [], "fast": False,
                "probabilities": False, "postprocess": self.postprocess.to_dict(), "roi_size": list(self.card.roi_size),
                "spacing_mm": self.task.spacing_mm, "step": STEP, "fold": FOLD,
                "arithmetic": "nnU-Net exact" if self.exact else "nnU-Net's (medseg engine above the logits budget)",
                "runtime": None if self.exact else {"backend": self.runtime.backend,
                                                      "precision": self.runtime.precision},
                "parts_run": list(self.last_runs),
                "part_folders": [str(d) for d in self.part_dirs],
                "crop_folders": [str(d) for d in self.crop_dirs or []], "fold_sha256": dict(self.folds),
                **self.output_parameters()}

    def predict(self, image: Any, *, path: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> Prediction:
        """Labels of the scan on ``image``'s voxel grid (``image``: medseg's reader output, channel first)."""
        start = time.perf_counter()
        source = Path(path) if path else Path("<array>")
        array = np.asarray(image.as_tensor() if hasattr(image, "as_tensor") else image)
        if array.ndim == 4 and array.shape[0] == 1:
            array = array[0]
        affine = np.asarray(image.affine, dtype=np.float64)
        crop = (self.crop_dirs, parse_task(f"totalsegmentator:{CROP_TASK}").spacing_mm) if self.crop_dirs else None
        result = predict(self.part_dirs, self.task.spacing_mm, array, affine, source=source,
                         batch_size=self.batch_size, exact=self.exact, subset=self.subset, crop=crop,
                         task=self.task.name, runtime=self.runtime)
        self.last_runs = list(result.runs)
        dtype = np.uint8 if len(self.names) <= 256 else np.int16
        out = labels_like(image, result.labels.astype(dtype),
                          {"labels": list(self.names), "model": self.info.full_name, "filename_or_obj": str(path)})
        seconds = time.perf_counter() - start
        return Prediction(out, self.names, None, self.settings(), {"total_s": seconds, "inference_s": seconds},
                          warnings=list(result.warnings))


def build_totalseg_predictor(model: str, *, weights_dir: Path | None = None, labels: Sequence[str] | None = None,
                             crop: bool = True, exact: bool = False, threads: int | None = None,
                             batch_size: int | None = None, backend: str = "auto",
                             precision: str = "auto") -> TotalSegPredictor:
    """Locate and check the task's folders (and the 6 mm crop model's for a subset, when present).
    ``backend``/``precision``: the default path's window runtime (``--exact`` takes PyTorch fp32 only)."""
    from medseg.core.log import get_logger
    from medseg.nnunet.standard import check_runtime

    check_runtime(backend, precision, exact)
    task = parse_task(model)
    part_dirs = locate(task, weights_dir)
    crop_dirs = None
    if labels and crop:
        try:
            crop_dirs = locate(parse_task(f"totalsegmentator:{CROP_TASK}"), weights_dir)
        except MedsegError:
            get_logger(__name__).warning("--labels: the %s folder is not there, the whole scan runs (no crop)",
                                         CROP_TASK)
    if threads:
        torch.set_num_threads(threads)
    return TotalSegPredictor(task, part_dirs, subset=labels, crop_dirs=crop_dirs, exact=exact, batch_size=batch_size,
                             runtime=Runtime(backend, precision))
