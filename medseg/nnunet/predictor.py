"""Run an nnU-Net v2 result folder on a case: exact (nnU-Net's arithmetic) or medseg's engine.

``exact=True`` reproduces ``nnUNetv2_predict``: float16 stitching one window at a time, folds averaged in
float16 logits, logits resampled back (order 1) before argmax. The default runs the same network, windows,
Gaussian and mirroring through medseg's batched, memory-bounded engine (labels decided per cell, folds
averaged per window in float32; windows per batch sized from the head count and free memory, cell sums in
float16 above ``MANY_CLASSES`` heads, else float32 while they fit the engine's limit). When the model spacing
differs from the scan's, it resamples the log of the stitched float16 probabilities (equal to the logits up
to a per-voxel constant, so the argmax of the order-1 resampling is the same as for logits) while they fit
``PROBABILITY_BUDGET``; above it, or above ``MANY_CLASSES`` heads, the labels are mapped back
nearest-neighbour, with no full-volume probabilities.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.inference.crop import nnunet_body_mask
from medseg.inference.preflight import default_tta, time_notice
from medseg.nnunet.checkpoint import Fold, load_fold, loaded_network
from medseg.nnunet.export import (
    labels_to_sitk,
    logits_to_cropped_labels,
    model_spacing,
    uncrop,
)
from medseg.nnunet.folder import (
    DEFAULT_CHECKPOINT,
    NnUNetFolder,
    read_folder,
    resolve_configuration,
)
from medseg.nnunet.labels import Labels, read_labels
from medseg.nnunet.network import NnUNetNetwork, build_network
from medseg.nnunet.postprocessing import apply_steps, find_file, read_steps
from medseg.nnunet.preprocessing import Case, check_plans, preprocess
from medseg.nnunet.resampling import resample
from medseg.nnunet.sliding import predict_logits, window_count

logger = get_logger(__name__)

# bytes the default path may spend resampling probabilities back (float16 on the model grid, their float32
# logits, the float32 result on the scan's crop: ~14 B per voxel and head); above this (many classes, large
# scans) labels are mapped back nearest-neighbour instead, with no full-volume probabilities
PROBABILITY_BUDGET = 2 << 30
# heads above which the default path accumulates window sums in float16 and keeps no probabilities
MANY_CLASSES = 16
# bytes per voxel and head of nnU-Net's own stitching and export (float16 logits on the model grid, their
# float64 working copy while resampled back, the float16 result) and of a second fold's float16 logits
NNUNET_BYTES = 14
NNUNET_FOLD_BYTES = 2
# fraction of the memory still available that nnU-Net's full-volume logits may take on the default path
NNUNET_MEMORY_FRACTION = 4
# bytes of one window's float32 logits held at once by a TTA batch: the sum, one pass and its flipped copy
TTA_COPIES = 3


def window_batch(heads: int, roi: Sequence[int], available: int | None = None) -> int:
    """Windows per batch for the default path: the engine's logits budget (batch 1 for 100+ classes on a
    128^3 patch), and at most a quarter of the memory still available for the batch's float32 logits."""
    import math

    from medseg.core.memory import available_memory
    from medseg.inference.sliding_window import auto_batch_size

    per_window = heads * math.prod(roi) * 4 * TTA_COPIES
    free = available_memory() if available is None else available
    return max(1, min(auto_batch_size(heads, roi, "cpu"), free // 4 // max(per_window, 1)))


def nnunet_arithmetic_bytes(heads: int, voxels: int, folds: int = 1) -> int:
    """Memory nnU-Net's full-volume stitching and export take for ``heads`` x ``voxels`` (the larger of the model
    grid and the cropped scan grid) with ``folds`` fold networks."""
    return heads * voxels * (NNUNET_BYTES + (NNUNET_FOLD_BYTES if folds > 1 else 0))


def nnunet_arithmetic_fits(heads: int, voxels: int, folds: int = 1, available: int | None = None) -> bool:
    """Whether the default path uses nnU-Net's stitching/export arithmetic (True) or medseg's memory-bounded
    engine (False): nnU-Net's full-volume logits must take at most a quarter of the memory still available."""
    from medseg.core.memory import available_memory

    free = available_memory() if available is None else available
    return nnunet_arithmetic_bytes(heads, voxels, folds) <= free // NNUNET_MEMORY_FRACTION


@dataclass
class NnUNetModel:
    """A loaded result folder: configuration, labels, one network per fold (strictly loaded)."""

    folder: NnUNetFolder
    config: dict
    labels: Labels
    folds: list[Fold]
    networks: list[NnUNetNetwork] = field(default_factory=list)
    postprocessing: list[tuple[int, ...]] = field(default_factory=list)   # keep-largest steps (postprocessing.json)
    postprocessing_file: Path | None = None
    previous: NnUNetModel | None = None     # a cascade's previous stage (3d_lowres), run first
    runners: list[Callable] | None = None   # the default path's CPU runtime per fold (None: the torch networks)
    last_tta: dict = field(default_factory=dict)   # the TTA choice of the last case, and why
    stitching: str = "auto"   # default path: "auto" (nnU-Net's when it fits), "nnunet", "engine"
    crop: str = "body"                               # "none": no body mask (nnU-Net's crop to non-zero stays)
    step: float = 0.5                                # window step in patches (TotalSegmentator runs its parts at 0.8)

    @property
    def in_channels(self) -> int:
        return len(self.folder.channel_names)

    @property
    def patch(self) -> list[int]:
        return [int(p) for p in self.config["patch_size"]]

    @property
    def mirror_axes(self) -> tuple[int, ...] | None:
        return self.folds[0].mirror_axes

    @property
    def network_channels(self) -> int:
        """Input channels of the network: the image channels, plus one per foreground label for a cascade."""
        return self.in_channels + (len(self.labels.foreground_labels) if self.previous is not None else 0)

    @property
    def stages(self) -> list[NnUNetModel]:
        """The models run for one case, first stage first (one, or previous stage then this cascade)."""
        return [*(self.previous.stages if self.previous is not None else []), self]

    @classmethod
    def load(cls, path: str | Path, folds: Sequence[str] | None = None,
             checkpoint_name: str = DEFAULT_CHECKPOINT, pins: dict[str, str] | None = None,
             previous_stage: str | Path | None = None, previous_pins: dict[str, str] | None = None) -> NnUNetModel:
        """Read ``path``, load the asked folds (default: all present) and build and strictly load networks.

        A ``3d_cascade_fullres`` folder also loads its previous stage: ``previous_stage`` or, as nnU-Net lays
        them out, ``Trainer__Plans__<previous_stage>`` next to it, with the same folds and checkpoint name."""
        folder = read_folder(path, checkpoint_name)
        chosen = folder.select(list(folds) if folds is not None else None)
        loaded = [load_fold(name, file, (pins or {}).get(name)) for name, file in chosen.items()]
        names = {f.configuration for f in loaded if f.configuration}
        if len(names) > 1:
            raise MedsegError(f"the folds were trained with different configurations ({', '.join(sorted(names))})",
                              path=folder.path)
        if names:
            folder.configuration = names.pop()
        if not folder.configuration:
            raise MedsegError("cannot tell the configuration (folder name is not Trainer__Plans__configuration)",
                              path=folder.path)
        config = resolve_configuration(folder.plans, folder.configuration, folder.path / "plans.json")
        check_plans(folder.plans, config)
        labels = read_labels(folder.dataset)
        model = cls(folder, config, labels, loaded)
        if config.get("previous_stage"):
            model.previous = load_previous_stage(folder, str(config["previous_stage"]), labels, folds,
                                                 checkpoint_name, previous_stage, previous_pins)
        elif previous_stage is not None:
            raise MedsegError(f"{folder.configuration} is not a cascade stage (its plans name no previous_stage)",
                              path=folder.path, hint="drop --previous-stage")
        model.postprocessing_file = find_file(folder.path, [f.name for f in loaded])
        if model.postprocessing_file is not None:  # postprocessing.pkl is never unpickled
            model.postprocessing = read_steps(model.postprocessing_file)
        for fold in loaded:
            net = loaded_network(lambda: build_network(config, model.network_channels, labels.num_heads), fold)
            model.networks.append(net.eval())
        return model

    def check_channels(self, files: Sequence[Path]) -> None:
        """One file per channel of dataset.json, else a clear error saying how to pass them."""
        names = self.folder.channel_names
        if len(files) != len(names):
            listing = ", ".join(f"_{i:04d} = {n}" for i, n in enumerate(names))
            raise MedsegError(
                f"the model expects {len(names)} channel file(s) ({listing}), got {len(files)}", path=files[0],
                hint="name the files CASE_0000.nii.gz, CASE_0001.nii.gz, ... in one folder, "
                     "or pass every channel of one case to --channels")

    def predict(self, files: Sequence[Path], *, exact: bool = False, tta: bool | None = True,
                batch_size: int | None = None,
                progress: Callable[[int, int], None] | None = None, postprocess: bool = True):
        """The label map of one case (a SimpleITK image on the first file's grid); ``postprocess``: apply the
        folder's ``postprocessing.json`` when it has one; ``tta=None``: medseg's default
        (:func:`~medseg.inference.preflight.default_tta`), recorded in ``last_tta``."""
        files = [Path(f) for f in files]
        self.check_channels(files)
        seg, case = self.segment(files, exact=exact, tta=tta, batch_size=batch_size, progress=progress,
                                 postprocess=postprocess)
        return labels_to_sitk(seg, case)

    def segment(self, files: Sequence[Path], *, exact: bool = False, tta: bool | None = True,
                batch_size: int | None = None, progress: Callable[[int, int], None] | None = None,
                postprocess: bool = True) -> tuple[np.ndarray, Case]:
        """The label array of one case on the file's grid (SimpleITK axis order) and the case read. A cascade
        runs its previous stage first (same arithmetic, no postprocessing, as ``nnUNetv2_predict`` would) and
        feeds its labels to this stage as one-hot channels."""
        previous = None
        if self.previous is not None:
            previous, _ = self.previous.segment(files, exact=exact, tta=tta, batch_size=batch_size,
                                                progress=progress, postprocess=False)
        case = preprocess(files, self.folder.plans, self.config, previous, self.labels.foreground_labels)
        if tta is None:  # medseg's policy (CPU: off for large scans); --exact keeps nnU-Net's default (on)
            tta, reason = (True, "--exact: nnU-Net's default") if exact else default_tta(
                None, None, windows=window_count(case.data.shape[1:], self.patch), roi=self.patch)
        else:
            reason = "--tta" if tta else "--no-tta or --fast"
        self.last_tta = {"tta": bool(tta), "tta_reason": reason,
                         "mirror_axes": list(self.mirror_axes or ()) if tta else []}
        axes = self.mirror_axes if tta else None
        if exact:
            cropped = self.exact_labels(case, axes)
        else:
            cropped = self._engine(case, axes, batch_size, progress)
        seg = uncrop(cropped, case, self.folder.plans, len(self.labels.output_values) - 1)
        if postprocess and self.postprocessing:
            seg = apply_steps(np.ascontiguousarray(seg), self.postprocessing)
        return seg, case

    @torch.inference_mode()
    def exact_labels(self, case: Case, axes) -> np.ndarray:
        """``--exact``: nnU-Net's arithmetic in PyTorch fp32 (each fold's float16 logits, averaged, resampled
        back, argmax), labels on the case's cropped grid."""
        data = torch.from_numpy(case.data)
        total = None
        for net in self.networks:
            logits = predict_logits(net, data, self.patch, self.labels.num_heads, axes, self.step)
            total = logits if total is None else total.add_(logits)
        if len(self.networks) > 1:
            total /= len(self.networks)
        return logits_to_cropped_labels(total, case, self.config, self.labels)

    @torch.inference_mode()
    def ensemble(self, x: torch.Tensor) -> torch.Tensor:
        """The folds' logits averaged (float32): one window batch through every fold network (or the CPU
        runtime attached by :meth:`use_runtime`)."""
        nets = self.runners or self.networks
        out = nets[0](x).float()
        for net in nets[1:]:
            out += net(x).float()
        return out / len(nets) if len(nets) > 1 else out

    def use_runtime(self, backend: str = "auto", precision: str = "auto", batch_size: int = 1) -> RuntimeSummary:
        """Run the default path's windows (every stage, every fold) on a CPU runtime: medseg's
        :func:`~medseg.inference.runtime.cpu_runtime`, where ``auto`` (OpenVINO fp32 when installed) is checked
        per fold network against PyTorch fp32 on its first windows and dropped below the accuracy guard's Dice.
        ``--exact`` never uses it (its windows are nnU-Net's PyTorch arithmetic)."""
        from medseg.backends.export import remember_weights_sha256
        from medseg.core.hashing import sha256_file_once
        from medseg.inference.runtime import cpu_runtime

        for stage in self.stages:
            card = stage.runtime_card()
            for fold, net in zip(stage.folds, stage.networks):   # compiled networks named by their fold file,
                remember_weights_sha256(net, f"nnunet fold file:{sha256_file_once(fold.path)}")  # hashed once a run
            runners = [cpu_runtime(net, card, backend=backend, precision=precision, batch_size=batch_size)
                       for net in stage.networks]
            stage.runners = None if all(r is None for r in runners) else [
                r if r is not None else net for r, net in zip(runners, stage.networks)]
        return RuntimeSummary(self)

    def runtime_card(self):
        """A card for the runtime and its guard: the network's window, input channels and decoding."""
        from medseg.core.card import ModelCard

        names = tuple(self.labels.names.get(v, str(v)) for v in range(max(self.labels.output_values) + 1))
        return ModelCard(name=self.folder.path.name, spatial_dims=len(self.patch), in_channels=self.network_channels,
                         out_channels=self.labels.num_heads, labels=names if not self.labels.has_regions else
                         tuple(f"region_{i}" for i in range(self.labels.num_heads)),
                         activation="sigmoid" if self.labels.has_regions else "softmax",
                         channel_names=(*self.folder.channel_names, *(
                             f"previous_stage_{v}" for v in (self.labels.foreground_labels if self.previous else ()))),
                         roi_size=tuple(self.patch), spacing=tuple(float(s) for s in self.config["spacing"]),
                         mirror_axes=tuple(self.mirror_axes or ()), orientation=None)

    def uses_nnunet_arithmetic(self, case: Case) -> bool:
        """The default path's choice for this case (see :func:`nnunet_arithmetic_fits`)."""
        if self.stitching != "auto":
            return self.stitching == "nnunet"
        voxels = max(case.data[0].size, int(np.prod(case.shape_after_cropping)))
        return nnunet_arithmetic_fits(self.labels.num_heads, voxels, len(self.networks))

    @torch.inference_mode()
    def nnunet_default_labels(self, case: Case, axes, batch_size: int | None, progress) -> np.ndarray:
        """nnU-Net's stitching and export (float16 logits one window at a time in its order, folds averaged in
        float16, logits resampled back) with the default path's windows: batched, run by the CPU runtime, and
        skipping windows outside a CT's body (voxels inside the body get nnU-Net's logits exactly)."""
        heads = self.labels.num_heads
        roi = (1, *self.patch) if len(self.patch) == 2 else tuple(self.patch)
        batch = batch_size or window_batch(heads, roi)
        mask = (nnunet_body_mask(case.data, self.config, self.folder.plans)
                if self.crop != "none" else None)
        passes = 2 ** len(axes) if axes else 1
        notice = time_notice(progress, None, passes=passes * len(self.networks))
        data = torch.from_numpy(case.data)
        total, stats = None, {}
        nets = self.runners or self.networks
        for runner in nets:
            def forward(x: torch.Tensor, runner=runner) -> torch.Tensor:
                return runner(x).float()
            logits = predict_logits(forward, data, self.patch, heads, axes, self.step, batch_size=batch, mask=mask,
                                    stats=stats, softmax=not self.labels.has_regions, progress=notice)
            total = logits if total is None else total.add_(logits)
        if len(nets) > 1:
            total /= len(nets)
        self.last_tta.update(windows={"run": stats.get("windows"), "skipped": stats.get("skipped")},
                             body_box_model_grid=None, stitching="nnunet")
        logger.debug("default path, nnU-Net's stitching: %d heads, batch %d, %s windows", heads, batch, stats)
        return logits_to_cropped_labels(total, case, self.config, self.labels)

    def _engine(self, case: Case, axes, batch_size: int | None, progress) -> np.ndarray:
        if self.uses_nnunet_arithmetic(case):
            return self.nnunet_default_labels(case, axes, batch_size, progress)
        from medseg.inference.sliding_window import (
            EngineOptions,
            sliding_window_labels,
            window_network,
        )

        two_d = len(self.patch) == 2
        roi = (1, *self.patch) if two_d else tuple(self.patch)
        net = window_network(self.ensemble, spatial_dims=2 if two_d else 3, slice_axis=0)
        mirror = tuple(a + 1 for a in axes) if (axes and two_d) else tuple(axes or ())
        activation = "sigmoid" if self.labels.has_regions else "softmax"
        heads = self.labels.num_heads
        resampled = tuple(case.data.shape[1:]) != tuple(case.shape_after_cropping)
        voxels = max(case.data[0].size, int(np.prod(case.shape_after_cropping)))
        keep = self.labels.has_regions or (resampled and heads <= MANY_CLASSES
                                           and heads * voxels * 14 <= PROBABILITY_BUDGET)
        batch = batch_size or window_batch(heads, roi)
        options = EngineOptions(roi=roi, overlap=0.5, mirror_axes=mirror, batch_size=batch, probabilities=keep,
                                accumulate="float16" if heads > MANY_CLASSES else "auto")
        logger.debug("engine: %d heads, batch %d, accumulate %s, probabilities %s", heads, batch,
                     options.accumulate, keep)
        mask = (nnunet_body_mask(case.data, self.config, self.folder.plans)   # CT: windows over the body only
                if self.crop != "none" else None)
        passes = 2 ** len(mirror) if mirror else 1
        result = sliding_window_labels(torch.from_numpy(case.data), net, channels=heads,
                                       activation=activation, options=options, mask=mask,
                                       progress=time_notice(progress, None, passes=passes))
        self.last_tta.update(windows={"run": result.windows_run, "skipped": result.windows_skipped},
                             body_box_model_grid=result.crop.to_dict() if result.crop is not None else None,
                             stitching="engine")
        if keep:  # back to logits (up to a per-voxel constant), resampled with nnU-Net's order-1 rule, decided
            prob = result.probabilities.float().clamp_(1e-7, 1.0)
            logits = torch.log(prob) if not self.labels.has_regions else torch.log(prob / (1 - prob).clamp_(1e-7))
            if resampled:
                kwargs = dict(self.config.get("resampling_fn_probabilities_kwargs", {}))
                kwargs.pop("is_seg", None)
                logits = torch.from_numpy(resample(logits.numpy(), case.shape_after_cropping,
                                                   model_spacing(self.config, case), case.spacing, **kwargs))
            if not self.labels.has_regions:
                return logits.argmax(0).numpy().astype(np.int16)
            labels = torch.zeros(logits.shape[1:], dtype=torch.int16)
            for i, value in enumerate(self.labels.regions_class_order):
                labels[logits[i] > 0] = value
            return labels.numpy()
        labels = result.labels
        if resampled:  # many classes: labels mapped back nearest-neighbour, no full-volume probabilities
            labels = F.interpolate(labels[None, None].float(), size=case.shape_after_cropping,
                                   mode="nearest-exact")[0, 0]
        return labels.numpy().astype(np.int16)


class RuntimeSummary:
    """What ran the default path's windows, read by the sidecar's ``run`` block (``backend``, ``precision``,
    ``reason``, ``threads``): the first fold's runtime, reported as PyTorch fp32 once any guard gave up."""

    def __init__(self, model: NnUNetModel) -> None:
        self.model = model

    def _runners(self) -> list:
        return [r for stage in self.model.stages for r in (stage.runners or stage.networks)]

    def _compiled(self):
        runners = self._runners()
        if any(not getattr(r, "trusted", True) for r in runners):
            return None
        first = runners[0]
        inner = getattr(first, "runtime", first)
        return inner if hasattr(inner, "backend") else None

    @property
    def backend(self) -> str:
        inner = self._compiled()
        return str(inner.backend) if inner is not None else "torch"

    @property
    def precision(self) -> str:
        inner = self._compiled()
        return str(inner.precision) if inner is not None else "fp32"

    @property
    def threads(self) -> int | None:
        inner = self._compiled()
        return getattr(inner, "threads", None) if inner is not None else torch.get_num_threads()

    @property
    def reason(self) -> str:
        runners = self._runners()
        guarded = [r for r in runners if hasattr(r, "trusted")]
        if guarded and any(not r.trusted for r in guarded):
            refused = [r for r in guarded if not r.trusted]
            when = " on an earlier run" if all(r.remembered is not None for r in refused) else ""
            return (f"auto: {refused[0].compiled_name} failed the accuracy guard against PyTorch fp32{when} "
                    f"(guard Dice {min(r.min_dice for r in refused):.4f}), PyTorch fp32 used")
        inner = self._compiled()
        if inner is None:
            return "PyTorch on the CPU"
        text = str(getattr(inner, "reason", ""))
        remembered = [r.remembered for r in guarded if r.remembered is not None]
        if remembered and len(remembered) == len(guarded):   # no PyTorch window ran this time
            text += f" [{remembered[0].describe()}]"
        elif guarded:
            text += f" [guarded: guard Dice {min(r.min_dice for r in guarded):.4f} vs PyTorch fp32 on the first windows]"
        return text

    def describe(self) -> str:
        return f"{self.backend} {self.precision} ({self.reason})"


def load_previous_stage(folder: NnUNetFolder, name: str, labels: Labels, folds: Sequence[str] | None,
                        checkpoint_name: str, path: str | Path | None = None,
                        pins: dict[str, str] | None = None) -> NnUNetModel:
    """The previous stage of a cascade folder: found where nnU-Net writes it, same folds, same label set."""
    if path is None:
        if not folder.trainer:
            raise MedsegError(f"cannot find the {name} stage this cascade needs (folder is not named "
                              "Trainer__Plans__configuration)", path=folder.path, hint="pass --previous-stage FOLDER")
        path = folder.path.parent / f"{folder.trainer}__{folder.plans_name}__{name}"
        if not path.is_dir():
            raise MedsegError(f"the {name} stage this cascade needs is missing", path=path,
                              hint=f"train {name} with the same trainer and plans, or pass --previous-stage FOLDER")
    previous = NnUNetModel.load(path, folds=folds, checkpoint_name=checkpoint_name, pins=pins)
    if previous.folder.configuration != name:
        raise MedsegError(f"the previous stage is {previous.folder.configuration!r}, the cascade's plans name {name!r}",
                          path=previous.folder.path, hint=f"pass the {name} result folder")
    if previous.labels.names != labels.names or previous.labels.regions != labels.regions:
        theirs = ", ".join(f"{k}={v}" for k, v in sorted(previous.labels.names.items()))
        ours = ", ".join(f"{k}={v}" for k, v in sorted(labels.names.items()))
        raise MedsegError(f"the previous stage's labels ({theirs}) differ from the cascade's ({ours})",
                          path=previous.folder.path / "dataset.json", hint="both stages must come from one dataset")
    if previous.folder.channel_names != folder.channel_names:
        raise MedsegError(f"the previous stage takes channels {previous.folder.channel_names}, the cascade "
                          f"{folder.channel_names}", path=previous.folder.path / "dataset.json",
                          hint="both stages must come from one dataset")
    return previous
