"""The training loop: plain PyTorch, MONAI pieces, nnU-Net defaults, resumable, DDP-aware.

``fit(recipe)`` validates the data, loads and preprocesses the cases once, then trains for
``epochs x iterations_per_epoch`` patches with the loss its output head picks (Dice+CE for exclusive labels,
Dice+BCE for sigmoid channels and regions, SAUNA's for soft targets; deep supervision where the model has it),
validates every ``val_every`` epochs with sliding-window inference, and writes ``last.pt`` every epoch
and ``best.pt`` on a new best mean validation Dice, atomically.
"""
from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg.core.atomic import atomic_write_text
from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.inference.segment import segment_case
from medseg.models.heads import OutputHead, head_for
from medseg.training.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from medseg.training.config import Recipe
from medseg.training.distributed import DistContext
from medseg.training.history import plot_history, write_history
from medseg.training.prepare import TrainingData, build_model_for, prepare_data
from medseg.training.run_folder import has_checkpoint
from medseg.training.sampling import PatchDataset, build_augmentation
from medseg.training.sauna_target import target_for

logger = get_logger(__name__)


@dataclass
class FitResult:
    """Where the run wrote its files and how it ended."""

    output: Path
    best_dice: float
    best_epoch: int
    epochs_run: int
    seconds: float
    history: list[dict]


def poly_lr(base: float, epoch: int, epochs: int, exponent: float = 0.9) -> float:
    """nnU-Net's polynomial decay: base * (1 - epoch/epochs)^0.9."""
    return base * (1 - epoch / epochs) ** exponent


def build_optimizer(model: nn.Module, recipe: Recipe, lr: float) -> torch.optim.Optimizer:
    t = recipe.train
    params = [p for p in model.parameters() if p.requires_grad]
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=t.momentum, nesterov=True, weight_decay=t.weight_decay)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=t.weight_decay)
    raise MedsegError(f"unknown optimizer {t.optimizer!r}", hint="use 'sgd' or 'adamw'")


@torch.no_grad()
def validate(model: nn.Module, cases: list[dict], card: ModelCard, device: torch.device,
             head: OutputHead | None = None,
             on_case: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Mean Dice per scored structure (the head's classes: labels, or BraTS-style regions) over the validation
    cases, through the prediction engine (Gaussian sliding window, overlap 0.5, no TTA). ``head`` decodes the
    outputs (default: the card's; SAUNA training passes its threshold-decoding head). ``on_case(done, total)``
    is called after each case (progress)."""
    head = head or head_for(card)
    was_training = model.training
    model.eval()
    classes = head.classes()
    dices: dict[str, list[float]] = {name: [] for name, _ in classes}
    for done, case in enumerate(cases, 1):
        pred = segment_case(model, card, case["image"], device=device, head=head).cpu()
        label = case["label"][0]
        for name, values in classes:
            keep = torch.tensor(sorted(values))
            p, g = torch.isin(pred, keep), torch.isin(label, keep)
            denom = int(p.sum() + g.sum())
            dices[name].append(1.0 if denom == 0 else 2.0 * int((p & g).sum()) / denom)
        if on_case:
            on_case(done, len(cases))
    model.train(was_training)
    return {name: float(np.mean(v)) for name, v in dices.items()}


def fit(recipe: Recipe, *, resume: bool = False, data: TrainingData | None = None,
        model: nn.Module | None = None, max_epochs: int | None = None,
        on_epoch: Callable[[dict], None] | None = None, on_iteration: Callable[[int, int], None] | None = None,
        dist: DistContext | None = None, on_validation: Callable[[int, int], None] | None = None) -> FitResult:
    """Train ``recipe``'s model on its dataset; see the module docstring.

    Args:
        recipe: the resolved recipe.
        resume: continue from ``<output>/last.pt`` if it exists (a killed run loses at most one epoch).
        data: preloaded cases (tests and fine-tuning pass them); default: from ``recipe.data``.
        model: a prepared model (fine-tuning passes one); default: built from ``recipe.model``.
        max_epochs: stop after this many epochs in this call (the schedule still uses ``train.epochs``).
        on_epoch / on_iteration / on_validation: progress callbacks (the CLI draws bars and logs lines with
            them); ``on_validation(done, total)`` runs after each validation case.
        dist: torch.distributed context (from ``medseg.training.distributed``); default: single process.
    """
    t = recipe.train
    dist = dist or DistContext.single()
    torch.manual_seed(t.seed + dist.rank)
    np.random.seed(t.seed + dist.rank)
    if t.threads:
        torch.set_num_threads(t.threads)
    device = dist.device
    data = data or prepare_data(recipe)
    model = model if model is not None else build_model_for(recipe, data)
    card: ModelCard = model.card  # type: ignore[assignment]  # every zoo model carries its card
    model.to(device)
    output = Path(t.output)
    if dist.is_main and not resume and has_checkpoint(output):  # the CLI checks earlier; Python callers too
        raise MedsegError("run folder has a checkpoint: resume=True to continue, or another train.output "
                          "(`medseg train --overwrite` moves the old run aside)", path=output)
    if dist.is_main:
        output.mkdir(parents=True, exist_ok=True)
        if data.plan:
            atomic_write_text(output / "plan.json", json.dumps({**data.plan, "split": data.split,
                                                                "card": card.to_dict()}, indent=1))
    base_lr = t.lr * (recipe.finetune.lr_factor if recipe.finetune.source else 1.0)
    optimizer = build_optimizer(model, recipe, base_lr)
    use_amp = t.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    target = target_for(recipe, card)  # None: hard labels; else the SAUNA soft-label mode
    head = head_for(card)              # what the outputs mean: loss, decoding, scored classes
    loss_fn = target.loss if target else head.loss()
    soft_keys = (target.key,) if target else ()
    if target:
        target.prepare(data.train)
    history: list[dict] = []
    start_epoch, best, best_epoch = 0, -1.0, -1
    last_path, best_path = output / "last.pt", output / "best.pt"
    if resume and last_path.is_file():
        state = load_checkpoint(last_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start_epoch, best, best_epoch = state["epoch"] + 1, state["best"], state["best_epoch"]
        history = list(state["history"])
        logger.info("resumed from %s at epoch %d", last_path, start_epoch)
    if not data.val and dist.is_main:
        logger.warning("no validation cases (data.val_cases empty, data.val_fraction = 0): no validation Dice; "
                       "best.pt will hold the final epoch's weights")
    net = dist.wrap(model)
    roi = tuple(card.roi_size)
    augment = build_augmentation(roi, spatial_dims=card.spatial_dims, mirror_axes=card.mirror_axes,
                                 strength=t.augmentation, float_keys=soft_keys)
    samples = t.iterations_per_epoch * t.batch_size
    dataset = PatchDataset(dist.shard(data.train), roi, samples, t.foreground_fraction, augment, seed=t.seed + dist.rank,
                           extra_keys=soft_keys)
    started = time.time()
    end_epoch = t.epochs if max_epochs is None else min(t.epochs, start_epoch + max_epochs)
    for epoch in range(start_epoch, end_epoch):
        lr = poly_lr(base_lr, epoch, t.epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        _freeze_encoder(model, epoch < recipe.finetune.freeze_encoder_epochs)
        dataset.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(dataset, batch_size=t.batch_size, num_workers=t.num_workers,
                                             shuffle=False, drop_last=True, pin_memory=device.type == "cuda")
        net.train()
        losses = []
        for it, batch in enumerate(loader):
            image = batch["image"].to(device)
            label = (target.batch_target(batch) if target else batch["label"]).to(device)
            try:
                with torch.autocast(device.type, enabled=use_amp):
                    loss = loss_fn(net(image), label)
            except torch.OutOfMemoryError as exc:
                raise MedsegError(
                    f"out of memory at epoch {epoch}, iteration {it} (patch {list(roi)}, batch {t.batch_size}, "
                    f"{device.type})", hint="lower plan.roi_size or train.batch_size, e.g. --set train.batch_size=1",
                ) from exc
            if not torch.isfinite(loss):
                raise MedsegError(
                    f"non-finite loss at epoch {epoch}, iteration {it}; training stopped",
                    path=last_path if last_path.exists() else None,
                    hint="the last good checkpoint is kept; lower train.lr or check the data for NaNs",
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            losses.append(float(loss.detach()))
            if on_iteration:
                on_iteration(it + 1, t.iterations_per_epoch)
        row = {"epoch": epoch, "lr": lr, "train_loss": float(np.mean(losses)), "seconds": time.time() - started}
        is_val = data.val and ((epoch + 1) % t.val_every == 0 or epoch == t.epochs - 1)
        if is_val and dist.is_main:
            dice = validate(model, data.val, card, device, head, on_case=on_validation)
            for name, value in dice.items():
                row[f"val_dice_{name}"] = value
            row["val_dice"] = float(np.mean(list(dice.values())))
        history.append(row)
        if dist.is_main:
            improved = is_val and row["val_dice"] > best
            if improved:
                best, best_epoch = row["val_dice"], epoch
            elif not data.val and epoch == t.epochs - 1:  # nothing to select on: the final weights are best.pt
                improved, best_epoch = True, epoch
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                     "rng": rng_state(), "epoch": epoch, "best": best, "best_epoch": best_epoch,
                     "history": history, "recipe": recipe.to_dict(), "card": card.to_dict()}
            if improved:
                save_checkpoint(best_path, **state)
            save_checkpoint(last_path, **state)
            write_history(history, output / "history.csv")
            plot_history(history, output / "curves.png")
            logger.info("epoch %d/%d  loss %.4f  %s", epoch + 1, t.epochs, row["train_loss"],
                        f"val dice {row['val_dice']:.4f}" if is_val else "")
        if on_epoch:
            on_epoch(row)
        dist.barrier()
    if dist.initialized:                 # drop the DDP reducer now, not at interpreter exit (see DistContext.close)
        del net
        gc.collect()
    return FitResult(output=output, best_dice=best, best_epoch=best_epoch, epochs_run=end_epoch - start_epoch,
                     seconds=time.time() - started, history=history)


def encoder_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters under the model class's ``encoder_prefixes`` (what ``--freeze-encoder-epochs`` freezes)."""
    prefixes = tuple(getattr(model, "encoder_prefixes", ()))
    return [(k, p) for k, p in model.named_parameters() if prefixes and k.startswith(prefixes)]


def _freeze_encoder(model: nn.Module, frozen: bool) -> None:
    """Freeze/unfreeze the encoder the model declares (``encoder_prefixes``) for fine-tuning warm-up."""
    params = encoder_parameters(model)
    if frozen and not params:
        raise MedsegError(f"{type(model).__name__} declares no encoder_prefixes: its encoder cannot be frozen",
                          hint="drop --freeze-encoder-epochs (finetune.freeze_encoder_epochs = 0)")
    for _, p in params:
        p.requires_grad_(not frozen)
