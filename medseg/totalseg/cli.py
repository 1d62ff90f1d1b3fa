"""``medseg predict --model totalsegmentator[:TASK]``: locate the parts, run each scan, write the labels."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger

logger = get_logger(__name__)


def output_path(source: Path, output: Path | None, many: bool) -> Path:
    """``-o FILE`` for one scan, ``-o FOLDER/CASE.nii.gz``, or ``CASE_seg.nii.gz`` next to the scan."""
    from medseg.io import split_ext

    stem, ext = split_ext(source)
    ext = ext if ext in (".nii", ".nii.gz") else ".nii.gz"
    if output is None:
        return source.parent / f"{stem}_seg{ext}"
    if many or output.is_dir() or not split_ext(output)[1]:
        return output / f"{stem}{ext}"
    return output


def predict_command(model: str, inputs: Sequence[Path], output: Path | None, *, weights_dir: Path | None,
                    output_type: str = "multilabel", batch_size: int | None = None, threads: int | None = None,
                    progress: Callable[[str], None] | None = None) -> list[Path]:
    """Run a TotalSegmentator task on every input file; every part folder is checked before anything runs."""
    import torch

    from medseg.inference.outputs import write_multilabel, write_per_class
    from medseg.io import read_image, split_ext
    from medseg.totalseg.pipeline import predict
    from medseg.totalseg.tasks import locate, parse_task

    if output_type not in ("multilabel", "per-class"):
        raise MedsegError(f"unknown --output-type {output_type!r}", hint="use multilabel or per-class")
    task = parse_task(model)
    part_dirs = locate(task, weights_dir)
    files = [Path(f) for f in inputs]
    for f in files:
        if not f.is_file():
            raise MedsegError("not a file", path=f, hint="pass CT image files (NIfTI, NRRD, ...)")
    if threads:
        torch.set_num_threads(threads)
    done = []
    for f in files:
        image = read_image(f)
        data = image.as_tensor().numpy()
        data = data[0] if data.ndim == 4 and data.shape[0] == 1 else data
        result = predict(part_dirs, task.spacing_mm, data, image.affine.numpy(), source=f,
                         batch_size=batch_size or 4)
        target = output_path(f, output, len(files) > 1)
        target.parent.mkdir(parents=True, exist_ok=True)
        name = f"totalsegmentator:{task.name}"
        if output_type == "per-class":
            folder = target.parent / split_ext(target)[0]
            write_per_class(result.labels, result.affine, folder, result.names, split_ext(target)[1], name)
            target = folder
        else:
            write_multilabel(result.labels, result.affine, target, result.names, name)
        done.append(target)
        logger.info("%s -> %s", f, target)
        if progress is not None:
            progress(f"{f} -> {target}")
    return done


def reject_options(used: dict[str, bool]) -> None:
    """Options of ``medseg predict`` this path does not honour yet: refused by name rather than ignored."""
    names = [name for name, on in used.items() if on]
    if names:
        raise MedsegError(f"{', '.join(names)} not supported with --model totalsegmentator yet",
                          hint="drop them (this path runs on the CPU and writes the label map only)")


def cli_command(model: str, inputs: Sequence[Path], output: Path | None, *, weights_dir: Path | None,
                output_type: str, batch_size: int | None, threads: int | None) -> None:
    """The ``medseg predict`` entry: one line per scan on stderr, then a count."""
    from rich.console import Console

    console = Console(stderr=True)
    done = predict_command(model, inputs, output, weights_dir=weights_dir, output_type=output_type,
                           batch_size=batch_size, threads=threads, progress=console.print)
    console.print(f"{len(done)} done ({model})")
