"""``medseg predict --model FOLDER``: group input files into cases, predict, write label maps atomically.

Cases follow nnU-Net's naming: ``CASE_0000.nii.gz``, ``CASE_0001.nii.gz``, ... are the channels of CASE
(in a folder or given one by one). A single-channel model also takes any image file as a case. Every case
is checked (channel count, readable) before anything runs, so bad input exits with nothing written.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.inference.batch import BatchEvent, BatchSummary
from medseg.nnunet.standard import NnUNetPredictor, build_folder_predictor

logger = get_logger(__name__)

CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".gz")


def _stem(path: Path) -> str:
    name = path.name
    for ending in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".tif", ".tiff", ".png"):
        if name.endswith(ending):
            return name[: -len(ending)]
    return path.stem


def _ending(path: Path) -> str:
    return path.name[len(_stem(path)):]


def group_cases(inputs: Sequence[Path], channels: list[str]) -> dict[str, list[Path]]:
    """Case name -> its channel files in channel order; raises naming the case and the fix."""
    files: list[Path] = []
    for p in inputs:
        p = Path(p)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(IMAGE_ENDINGS)
                            and not f.name.startswith("."))
        elif p.is_file():
            files.append(p)
        else:
            raise MedsegError("input not found", path=p)
    if not files:
        raise MedsegError("no image files among the inputs", path=inputs[0] if inputs else None)
    cases: dict[str, dict[int, Path]] = {}
    loose: list[Path] = []
    for f in files:
        m = CHANNEL.match(_stem(f))
        if m:
            cases.setdefault(m["case"], {})[int(m["channel"])] = f
        else:
            loose.append(f)
    n = len(channels)
    listing = ", ".join(f"_{i:04d} = {c}" for i, c in enumerate(channels))
    if loose:
        if n != 1:
            raise MedsegError(
                f"the model expects {n} channels ({listing}); cannot tell which channel this file is",
                path=loose[0], hint="name each case's files CASE_0000.nii.gz ... CASE_"
                                    f"{n - 1:04d}.nii.gz and pass them (or their folder)")
        for f in loose:
            cases.setdefault(_stem(f), {})[0] = f
    out = {}
    for case, chans in sorted(cases.items()):
        if sorted(chans) != list(range(n)):
            have = ", ".join(f"_{c:04d}" for c in sorted(chans))
            raise MedsegError(f"case {case} has channel files {have}, the model expects {n} ({listing})",
                              path=next(iter(chans.values())),
                              hint=f"pass every channel of the case: {case}_0000 ... {case}_{n - 1:04d}")
        out[case] = [chans[c] for c in range(n)]
    return out


def output_paths(cases: dict[str, list[Path]], output: Path | None) -> dict[str, Path]:
    """Where each case's labels go: ``-o FILE`` (one case), ``-o FOLDER/CASE.ext`` or next to the input."""
    if output is not None and _ending(output) in (".nii.gz", ".nii", ".nrrd", ".mha") and not output.is_dir():
        if len(cases) != 1:
            raise MedsegError(f"-o names one file but there are {len(cases)} cases", path=output,
                              hint="give a folder")
        return {next(iter(cases)): output}
    out = {}
    for case, files in cases.items():
        ending = _ending(files[0]) or ".nii.gz"
        out[case] = (output / f"{case}{ending}") if output is not None else files[0].with_name(f"{case}_seg{ending}")
    inputs = {f.resolve() for fs in cases.values() for f in fs}
    for case, path in out.items():
        if path.resolve() in inputs:
            raise MedsegError("the output would overwrite an input", path=path, hint="choose another -o")
    return out


def load_folder_model(model_ref: str, *, folds: Sequence[str] | None = None, checkpoint_name: str | None = None,
                      previous_stage: str | Path | None = None):
    """(model, display name, pinned fold sha256s) for a folder path or a name from ``models import-folder``
    (a cascade's previous stage: ``previous_stage``, the imported one, or found next to the folder)."""
    from medseg.nnunet.folder import DEFAULT_CHECKPOINT
    from medseg.nnunet.predictor import NnUNetModel
    from medseg.nnunet.registry import lookup

    pins = previous_pins = None
    path = Path(model_ref)
    card = None if path.is_dir() else lookup(model_ref)
    name = path.name
    if card is not None:
        path, name = Path(card["path"]), model_ref
        checkpoint_name = checkpoint_name or card.get("checkpoint_name")
        pins = {k: v.get("sha256") for k, v in card.get("folds", {}).items()}
        stage = card.get("previous_stage")
        if stage and previous_stage is None:
            previous_stage = Path(stage["path"])
            previous_pins = {k: v.get("sha256") for k, v in stage.get("folds", {}).items()}
        if folds is not None:
            unknown = [f for f in folds if f not in pins]
            if unknown:
                raise MedsegError(f"fold {', '.join(unknown)} was not imported under {model_ref!r}",
                                  hint=f"imported folds: {', '.join(pins)}")
        elif pins:
            folds = list(pins)
    model = NnUNetModel.load(path, folds=folds, checkpoint_name=checkpoint_name or DEFAULT_CHECKPOINT, pins=pins,
                             previous_stage=previous_stage, previous_pins=previous_pins)
    return model, name, pins


def check_headers(cases: dict[str, list[Path]]) -> None:
    """Every channel header readable before anything runs or is written."""
    import SimpleITK as sitk

    for files in cases.values():
        for f in files:
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(f))
            try:
                reader.ReadImageInformation()
            except RuntimeError as exc:
                raise MedsegError(f"cannot read image ({str(exc).strip().splitlines()[-1][:160]})", path=f) from exc


def predict_folder_model(model_ref: str, inputs: Sequence[Path], output: Path | None, *,
                         folds: Sequence[str] | None = None, checkpoint_name: str | None = None,
                         exact: bool = False, tta: bool | None = True, threads: int | None = None,
                         stats: bool = False, resume: bool = False, shard: str | tuple[int, int] | None = None,
                         backend: str = "auto", precision: str = "auto", postprocess: bool = True,
                         progress: Callable[[BatchEvent], None] | None = None,
                         previous_stage: str | Path | None = None,
                         crop: str | None = None) -> tuple[BatchSummary, NnUNetPredictor]:
    """Predict every case with an nnU-Net v2 folder (a path, or a name from ``models import-folder``) through
    medseg's batch path: sidecars with the fold sha256s, ``--stats``, ``--resume`` and ``--shard``."""
    from medseg.inference.batch import OutputOptions, run_batch
    from medseg.inference.cases import Case, parse_shard, select_shard, shard_from_env

    predictor = build_folder_predictor(model_ref, folds=folds, checkpoint_name=checkpoint_name, exact=exact, tta=tta,
                                       threads=threads, backend=backend, precision=precision,
                                       postprocess=postprocess, previous_stage=previous_stage, crop=crop)
    grouped = group_cases(list(inputs), predictor.model.folder.channel_names)
    targets = output_paths(grouped, output)
    check_headers(grouped)
    cases = [Case(case, files[0], targets[case]) for case, files in grouped.items()]
    split = parse_shard(shard) if isinstance(shard, str) else shard or shard_from_env()
    if split is not None:
        cases = select_shard(cases, *split)
    predictor.channels = {f[0].resolve(): f for f in grouped.values()}
    summary = run_batch(predictor, cases, OutputOptions(stats=stats), resume=resume,  # type: ignore[arg-type]
                        progress=progress)
    for result in summary.results:
        logger.info("%s: %s %s", result.case.name, result.status, result.message or result.case.output)
    return summary, predictor
