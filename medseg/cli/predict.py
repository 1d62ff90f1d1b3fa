"""``medseg predict``: segment scans with a zoo model; results keep each scan's own geometry."""
from __future__ import annotations

from pathlib import Path

import typer


def predict(
    inputs: list[Path] = typer.Argument(..., help="Scan files, folders of scans, or DICOM series folders."),
    output: Path | None = typer.Option(
        None, "--output", "-o",
        help="A file (one input, image extension) or a folder. Default: CASE_seg.EXT next to each input."),
    model: str | None = typer.Option(None, "--model", "-m", help="NAME[.TAG] from `medseg models list`, an nnU-Net "
                                        "folder, or totalsegmentator[:total|:total_fast|:total_fastest] (your "
                                        "TotalSegmentator weights). Default: the shipped model with local weights."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Your own weights file for --model NAME "
                                              "(cascade.NAME: a folder with stage1/best.pt and stage2/best.pt)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    overlap: float = typer.Option(0.5, "--overlap", min=0.0, max=0.95, help="Sliding-window overlap (0..0.95)."),
    tta: bool | None = typer.Option(None, "--tta/--no-tta",
                                       help="Mirroring test-time augmentation. Default: the model card's, else on, "
                                       "except on a CPU for large scans (over 16M window voxels, e.g. a whole CT: "
                                       "8 passes would take hours); --fast turns it off."),
    fast: bool = typer.Option(False, "--fast", help="Overlap <= 0.25 and no TTA."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Windows per forward pass."),
    output_type: str = typer.Option("multilabel", "--output-type", help="multilabel (one file) or per-class."),
    output_format: str | None = typer.Option(
        None, "--output-format", help="image (the format of -o or the input), dicom-seg or rtstruct (one .dcm "
        "object per DICOM series input, referencing it). Default: dicom-seg for -o NAME.dcm, else image."),
    stats: bool = typer.Option(False, "--stats", help="Write per-structure volume (mL), voxels, mean intensity, "
                               "and the quality estimate (predicted Dice, flag)."),
    probabilities: bool = typer.Option(False, "--probabilities", help="Also write probability maps (<= 16 classes)."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Foreground probability for sigmoid and SAUNA (regression) models, in (0, 1). "
        "Default: the model card's, else 0.5 (SAUNA: signed output > 0)."),
    save_soft: bool | None = typer.Option(
        None, "--save-soft/--no-save-soft", help="SAUNA models: also write CASE_soft.nii.gz (float32 foreground "
        "probability, the scan's grid). Default: the model card's."),
    resume: bool = typer.Option(False, "--resume", help="Skip cases whose outputs and sidecar are complete; "
                                "several --resume runs on one folder split the cases (a claim file per output)."),
    shard: str | None = typer.Option(None, "--shard", help="i/n: this process takes cases i, i+n, ... "
                                        "(0-based). Default: torchrun's RANK/WORLD_SIZE."),
    weights_dir: Path | None = typer.Option(None, "--weights-dir", help="Extra folder searched for weights."),
    frame: int | None = typer.Option(None, "--frame", help="For 4D files: the frame to segment."),
    series: str | None = typer.Option(None, "--series", help="For DICOM folders with several series: the UID."),
    keep_largest: bool = typer.Option(False, "--keep-largest", help="Keep the largest component of each class."),
    remove_islands: float = typer.Option(0.0, "--remove-islands", min=0.0, metavar="MM3",
                                         help="Remove components smaller than MM3 cubic millimetres."),
    fill_holes: bool = typer.Option(False, "--fill-holes", help="Fill holes inside each class."),
    no_postprocess: bool = typer.Option(False, "--no-postprocess", help="Ignore the model card's postprocessing."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads (default: all allowed)."),
    backend: str = typer.Option("auto", "--backend", help="CPU windows: auto (OpenVINO fp32 when medseg[cpu] is "
                                "installed, else torch), torch, openvino or onnxruntime."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, bf16 (CPU; --fast picks bf16), fp16 (CUDA) "
                                  "or int8 (OpenVINO, NNCF-calibrated, kept only within the accuracy guard)."),
    calibration: Path | None = typer.Option(None, "--calibration", help="--precision int8: a few training scans "
                                            "(file or folder) to calibrate on (default: the model's training cases)."),
    max_voxels: int | None = typer.Option(None, "--max-voxels", min=1, help="Refuse scans larger than N voxels at "
                                          "the model's spacing (default: what free memory holds)."),
    force: bool = typer.Option(False, "--force", help="Run scans the checks refuse: too large after resampling, "
                               "far outside the model's field of view, or another modality (CT to an MR model)."),
    flag_below: float = typer.Option(0.8, "--flag-below", min=0.0, max=1.0, help="Flag structures whose "
                                     "predicted Dice (quality estimate in the sidecar) is below this."),
    quality: bool = typer.Option(True, "--quality/--no-quality", help="Per-structure quality estimates in the "
                                 "sidecar (predicted Dice, flag, signals)."),
    folds: str | None = typer.Option(None, "--folds", help="nnU-Net folders: folds to ensemble, e.g. 0,1 "
                                     "(default: every fold present)."),
    checkpoint_name: str | None = typer.Option(None, "--checkpoint-name", help="nnU-Net folders: the fold file "
                                               "(default checkpoint_final.pth)."),
    exact: bool = typer.Option(False, "--exact", help="nnU-Net folders and totalsegmentator: nnU-Net's own "
                               "arithmetic (float16 stitching, logits resampled back), the same labels as "
                               "nnUNetv2_predict / TotalSegmentator."),
    previous_stage: Path | None = typer.Option(None, "--previous-stage", help="nnU-Net 3d_cascade_fullres folders: "
                                               "the 3d_lowres result folder run first (default: found next to it)."),
    labels: str | None = typer.Option(None, "--labels", help="totalsegmentator: only these classes, e.g. "
                                      "liver,spleen (TotalSegmentator's --roi_subset; its IDs, cropped by the "
                                      "6 mm model when its folder is there)."),
    crop: str | None = typer.Option(None, "--crop", help="Where windows go on whole scans: body (CT), nonzero, "
                                    "or none (every window). Default: the model card's, else body for CT models "
                                    "and nonzero for the rest; outside is background."),
) -> None:
    """Segment scans. Outputs: label map (+ JSON provenance sidecar), optional stats and probabilities.

    Exit codes: 0 all cases done or skipped; 1 some cases of a batch failed (the table lists them);
    2 bad usage, an output that would overwrite an input or cannot be written, or a single input that fails.

    Examples:
      medseg predict scan.nii.gz -o seg.nii.gz
      medseg predict scans/ -o segs/ --model stunet_t.hippocampus --device cuda --stats
      medseg predict scans/ -o segs/ --fast --resume --shard 0/2
      medseg predict scans/ -o segs/ --stats --flag-below 0.85          # quality estimate per structure
      medseg predict ct.nrrd -o masks/ --output-type per-class --remove-islands 200
      medseg predict scans/ -o segs/ --backend torch --precision fp32     # plain PyTorch on the CPU
      medseg predict scan.nii.gz --model stunet_t --checkpoint runs/sauna/best.pt --threshold 0.6 --save-soft
      medseg predict ct.nii.gz -o seg.nii.gz --model cascade.pancreas_ct  # two-stage coarse-to-fine cascade
      medseg predict dicom_series/ -o seg.dcm                             # DICOM-SEG for PACS, Slicer, OHIF
      medseg predict patients/ -o structures/ --output-format rtstruct   # one RTSTRUCT per series
      medseg predict case_0000.nii.gz --model nnUNet_results/Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres --exact
      medseg predict ct.nii.gz -o seg.nii.gz --model totalsegmentator:total_fast   # your TotalSegmentator weights
    """
    from medseg.cli._predict_view import PredictProgress, print_summary
    from medseg.core.errors import MedsegError
    from medseg.nnunet.cli import is_nnunet_model, predict_command, reject_nnunet_options

    if model is not None and model.split(":")[0] == "totalsegmentator":
        from medseg.totalseg.cli import cli_command, reject_options

        reject_options({"--probabilities": probabilities, "--device": device not in ("auto", "cpu"),
                        "--keep-largest": keep_largest, "--remove-islands": bool(remove_islands),
                        "--fill-holes": fill_holes, "--checkpoint": checkpoint is not None,
                        "--overlap": overlap != 0.5, "--tta": bool(tta), "--threshold": threshold is not None,
                        "--previous-stage": previous_stage is not None, "--crop": crop is not None})
        code = cli_command(model, inputs, output, weights_dir=weights_dir, output_type=output_type,
                           output_format=output_format, stats=stats, resume=resume, shard=shard, frame=frame,
                           series=series, labels=labels, exact=exact, batch_size=batch_size, threads=threads,
                           backend=backend, precision=precision)
        if code:
            raise typer.Exit(code)
        return
    if labels:
        raise MedsegError("--labels applies to --model totalsegmentator only",
                          hint="other models segment every label; --output-type per-class writes one mask per label")
    if is_nnunet_model(model):
        code = predict_command(model, inputs, output, folds=folds, checkpoint_name=checkpoint_name, exact=exact,
                               tta=False if fast else tta, threads=threads, stats=stats, resume=resume, shard=shard,
                               backend=backend, precision=precision, output_type=output_type,
                               postprocess=not no_postprocess, previous_stage=previous_stage, crop=crop,
                               unsupported={"--probabilities": probabilities, "--keep-largest": keep_largest,
                                            "--remove-islands": remove_islands, "--fill-holes": fill_holes,
                                            "--output-format": output_format not in (None, "image"),
                                            "--overlap": overlap != 0.5, "--threshold": threshold is not None,
                                            "--checkpoint": checkpoint, "--frame": frame, "--series": series})
        if code:
            raise typer.Exit(code)
        return
    reject_nnunet_options(folds, checkpoint_name, exact, previous_stage)
    if output_type not in ("multilabel", "per-class"):
        raise MedsegError(f"unknown --output-type {output_type!r}", hint="use multilabel or per-class")
    if no_postprocess and (keep_largest or remove_islands or fill_holes):
        raise MedsegError("--no-postprocess cannot be combined with --keep-largest/--remove-islands/--fill-holes")
    if model is not None and not model.startswith("cascade.") and not model.endswith(".toml") \
            and _is_graph_model(model):
        _predict_graph(model, inputs, output, weights_dir, checkpoint)
        return
    flags = {k: v for k, v in (("keep_largest", keep_largest), ("min_island_mm3", remove_islands),
                               ("fill_holes", fill_holes)) if v}
    postprocess = False if no_postprocess else (flags or None)
    from medseg import api  # here: nnU-Net folders and TotalSegmentator run without MONAI

    predictor = api.build_predictor(
        model, device=device, overlap=overlap, tta=tta, fast=fast, batch_size=batch_size, postprocess=postprocess,
        probabilities=probabilities, weights_dir=weights_dir, checkpoint=checkpoint, threads=threads,
        backend=backend, precision=precision, threshold=threshold, save_soft=save_soft,
        max_voxels=max_voxels, force=force, calibration=calibration, crop=crop, quality=quality,
        flag_below=flag_below,
    )
    with PredictProgress() as view:
        summary = api.predict_files(inputs, output, predictor=predictor, output_type=output_type,
                                    output_format=output_format, stats=stats,
                                    resume=resume, shard=shard, frame=frame, series=series,
                                    progress=view.update)
    single = summary.single_failure()
    if single is not None:  # one input that fails: one line, exit 2 (a batch keeps its table, exit 1)
        raise single
    print_summary(summary, predictor)
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def _is_graph_model(model: str) -> bool:
    from medseg.models import get_card

    return get_card(model).activation == "graph"


def _predict_graph(model, inputs, output, weights_dir, checkpoint) -> None:
    """Graph models (HybridGNet): a mask and a landmark JSON per image."""
    from rich.console import Console

    from medseg.inference.graph import predict_graph_files
    from medseg.inference.model_loading import load_model

    net, card, info = load_model(model, weights_dir=weights_dir, checkpoint=checkpoint)
    summary = predict_graph_files(net, card, list(inputs), output, name=model)
    Console(stderr=True).print(f"{len(summary.done)} done, {len(summary.failed)} failed")
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
