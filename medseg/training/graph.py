"""Training graph models (HybridGNet) on images with landmark contours.

Loss (Gaggion et al.): MSE of the output nodes + MSE of the IGSC positions (the coarse ones against the
pooled target) + ``kl_weight`` x KL of the latent. Errors are measured in pixels of the model input;
``kl_weight`` is given on the original's normalised-coordinate scale (1e-5) and multiplied by the input
size squared, so the balance does not change with the resolution. Augmentation warps image and landmarks
with the same random affine (scale, rotation, shift), then applies gamma and Gaussian noise to the image.
Checkpoints (``last.pt``, ``best.pt`` on the lowest validation landmark error) and ``history.csv`` reuse
the training package's atomic writers; a run resumes from ``last.pt``.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.models._graph import template_from_card
from medseg.models._graph_predict import (
    check_image_size,
    normalise_image,
    positions_to_pixels,
)
from medseg.training.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from medseg.training.history import plot_history, write_history
from medseg.transforms.landmarks import (
    LandmarkError,
    Letterbox,
    landmarks_to_mask,
    mask_to_landmarks,
    to_grey,
)

logger = get_logger(__name__)


@dataclass
class GraphTrainConfig:
    """Optimisation and augmentation settings (defaults: the paper's, but fewer epochs)."""

    epochs: int = 200
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 1e-5
    step_size: int = 50          # StepLR every this many epochs
    gamma: float = 0.9
    kl_weight: float = 1e-5      # on normalised coordinates; scaled by size^2 for pixel losses
    seed: int = 420
    augment: bool = True
    scale: tuple[float, float] = (0.85, 1.15)
    rotate_deg: float = 3.0
    shift: float = 0.05          # fraction of the image
    gamma_range: tuple[float, float] = (0.6, 1.2)
    noise_std: float = 1 / 128
    grad_clip: float = 10.0
    val_every: int = 10
    max_seconds: float | None = None   # stop after the epoch that crosses this wall-clock budget
    output: str | None = None    # folder for checkpoints and history; None keeps everything in memory
    device: str = "cpu"


@dataclass
class GraphFitResult:
    """How a run ended: best validation landmark error (input pixels), its epoch, the per-epoch rows."""

    best_error: float
    best_epoch: int
    epochs_run: int
    seconds: float
    history: list[dict]
    output: Path | None


# ---------------------------------------------------------------------------------------------- data
def read_xray(path: str | PathLike) -> np.ndarray:
    """A 2D image file as an (H, W) float32 grey array indexed ``[row, col]`` (colour converted)."""
    from medseg.io import read_image

    image = read_image(path)
    array = np.asarray(image.numpy())
    if array.ndim != 3:
        raise MedsegError(f"expected a 2D image, got spatial shape {tuple(array.shape[1:])}", path=path)
    return to_grey(np.swapaxes(array, 1, 2))   # medseg arrays are (C, x, y); images are [row, col]


def load_landmark_case(image_path: str | PathLike, mask_path: str | PathLike, card, **mask_options) -> dict | None:
    """One training case ``{"name", "image" (1, S, S), "landmarks" (N, 2) input pixels, "letterbox"}``,
    or None (with a warning) when the mask gives no reliable contour."""
    template = template_from_card(card)
    image = read_xray(image_path)
    mask = read_xray(mask_path)
    if mask.shape != image.shape:
        raise MedsegError(f"mask {mask.shape} and image {image.shape} sizes differ", path=mask_path)
    try:
        graph = mask_to_landmarks(mask, template.organs, **mask_options)
    except LandmarkError as exc:
        logger.warning("%s: skipped, %s", mask_path, exc)
        return None
    size = int(card.roi_size[0])
    check_image_size(image.shape, size, image_path)
    box = Letterbox(image.shape[0], image.shape[1], size)
    points = np.concatenate([box.to_input(graph[name]) for name in template.names])
    return {"name": Path(image_path).stem, "image": torch.from_numpy(box.apply(normalise_image(image, card.intensity)))[None],
            "landmarks": torch.from_numpy(points).float(), "letterbox": box}


# ---------------------------------------------------------------------------------------------- augmentation
def random_affine(n: int, config: GraphTrainConfig, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) ``affine_grid`` matrices (output -> input, normalised coordinates)."""
    def uniform(low, high):
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = uniform(-config.rotate_deg, config.rotate_deg) * math.pi / 180
    sx, sy = uniform(*config.scale), uniform(*config.scale)
    tx, ty = uniform(-config.shift, config.shift) * 2, uniform(-config.shift, config.shift) * 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos / sx, -sin / sx, tx], 1), torch.stack([sin / sy, cos / sy, ty], 1)], 1)
    return theta


def warp_images(images: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Resample (B, C, H, W) images with ``theta`` (zeros outside)."""
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)


def warp_points(points: torch.Tensor, theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Move (B, N, 2) input-pixel points the way :func:`warp_images` moves the image under them."""
    h, w = size
    scale = points.new_tensor([w, h])
    g = 2 * (points + 0.5) / scale - 1                               # pixels -> normalised grid
    a, t = theta[:, :, :2].to(points.dtype), theta[:, :, 2].to(points.dtype)
    moved = torch.linalg.solve(a, (g - t[:, None, :]).transpose(1, 2)).transpose(1, 2)  # input -> output
    return (moved + 1) * scale / 2 - 0.5


def augment_batch(images: torch.Tensor, points: torch.Tensor, config: GraphTrainConfig,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random affine on images and landmarks together, then gamma and noise on the images (in [0, 1])."""
    theta = random_affine(images.shape[0], config, generator).to(images.device)
    images = warp_images(images, theta)
    points = warp_points(points, theta, tuple(images.shape[-2:]))
    low, high = config.gamma_range
    gamma = (low + (high - low) * torch.rand(images.shape[0], generator=generator)).to(images.device)
    images = images.clamp(0, 1) ** gamma[:, None, None, None]
    noise = torch.randn(images.shape, generator=generator).to(images.device) * config.noise_std
    return (images + noise).clamp(0, 1), points


# ---------------------------------------------------------------------------------------------- loss
def graph_loss(outputs, target: torch.Tensor, pool: torch.Tensor, size: int, kl_weight: float) -> tuple[torch.Tensor, dict]:
    """Total loss and its parts; ``target`` (B, N, 2) in input pixels, outputs from a training-mode model."""
    out, pos1, pos2, mu, logvar = outputs
    t = (target + 0.5) / size                                        # input pixels -> normalised positions
    mse = ((out - t) * size).pow(2).mean()
    mse1 = ((pos1 - torch.matmul(pool, t)) * size).pow(2).mean()
    mse2 = ((pos2 - t) * size).pow(2).mean()
    kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
    total = mse + mse1 + mse2 + kl_weight * size * size * kl
    return total, {"mse_px2": float(mse.detach()), "kl": float(kl.detach())}


@torch.no_grad()
def evaluate_landmarks(model: nn.Module, cases: list[dict], device: torch.device) -> dict:
    """Mean landmark error (input pixels) and Dice of the rasterised contours over ``cases``."""
    template = template_from_card(model.card)
    was_training = model.training
    model.eval()
    errors, dices = [], []
    for case in cases:
        size = case["image"].shape[-1]
        pred = positions_to_pixels(model(case["image"][None].to(device))[0].cpu().numpy(), size)
        gt = case["landmarks"].numpy()
        errors.append(float(np.linalg.norm(pred - gt, axis=1).mean()))
        p = landmarks_to_mask(template.split(pred), (size, size)) > 0
        g = landmarks_to_mask(template.split(gt), (size, size)) > 0
        dices.append(2 * float((p & g).sum()) / max(float(p.sum() + g.sum()), 1.0))
    model.train(was_training)
    return {"error_px": float(np.mean(errors)), "dice": float(np.mean(dices))}


# ---------------------------------------------------------------------------------------------- loop
def fit_graph(model: nn.Module, train: list[dict], val: list[dict], config: GraphTrainConfig, *,
              resume: bool = False, max_epochs: int | None = None, on_epoch=None) -> GraphFitResult:
    """Train a graph model on landmark cases (from :func:`load_landmark_case`); see the module docstring."""
    if not train:
        raise MedsegError("no training cases with usable landmarks", hint="check the masks (see the warnings)")
    template = template_from_card(model.card)
    for case in train + val:
        if case["landmarks"].shape[0] != template.num_nodes:
            raise MedsegError(f"case {case['name']} has {case['landmarks'].shape[0]} landmarks, "
                              f"the template has {template.num_nodes}")
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    model.to(device)
    size = int(model.card.roi_size[0])
    pool = template.pool_matrix().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    generator = torch.Generator().manual_seed(config.seed)
    output = Path(config.output) if config.output else None
    history: list[dict] = []
    start, best, best_epoch = 0, math.inf, -1
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        if resume and (output / "last.pt").is_file():
            state = load_checkpoint(output / "last.pt")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            set_rng_state(state["rng"])
            generator.set_state(state["generator"])
            start, best, best_epoch, history = state["epoch"] + 1, state["best"], state["best_epoch"], list(state["history"])
            logger.info("resumed from %s at epoch %d", output / "last.pt", start)
    images = torch.stack([c["image"] for c in train])
    targets = torch.stack([c["landmarks"] for c in train])
    started = time.time()
    end = config.epochs if max_epochs is None else min(config.epochs, start + max_epochs)
    for epoch in range(start, end):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        losses, mses = [], []
        for i in range(0, len(order), config.batch_size):
            idx = order[i:i + config.batch_size]
            if len(idx) < 2 and len(order) >= 2:   # batch norm needs two samples
                continue
            x, y = images[idx].to(device), targets[idx].to(device)
            if config.augment:
                x, y = augment_batch(x, y, config, generator)
            loss, parts = graph_loss(model(x), y, pool, size, config.kl_weight)
            if not torch.isfinite(loss):
                raise MedsegError(f"non-finite loss at epoch {epoch}; training stopped",
                                  hint="lower the learning rate; the last good checkpoint is kept")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            losses.append(float(loss.detach()))
            mses.append(parts["mse_px2"])
        scheduler.step()
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": float(np.mean(losses)),
               "train_mse_px2": float(np.mean(mses)), "seconds": round(time.time() - started, 2)}
        if val and ((epoch + 1) % config.val_every == 0 or epoch == end - 1):
            metrics = evaluate_landmarks(model, val, device)
            row["val_error_px"], row["val_dice"] = metrics["error_px"], metrics["dice"]
            if metrics["error_px"] < best:
                best, best_epoch = metrics["error_px"], epoch
                if output is not None:
                    save_checkpoint(output / "best.pt", model=model.state_dict(), epoch=epoch,
                                    card=model.card.to_dict(), config=asdict(config))
        history.append(row)
        if output is not None:
            save_checkpoint(output / "last.pt", model=model.state_dict(), optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), rng=rng_state(), generator=generator.get_state(),
                            epoch=epoch, best=best, best_epoch=best_epoch, history=history,
                            card=model.card.to_dict(), config=asdict(config))
            write_history(history, output / "history.csv")
            if "val_dice" in row:
                plot_history(history, output / "curves.png")
        logger.info("epoch %d  loss %.2f  mse %.1f px^2%s", epoch, row["train_loss"], row["train_mse_px2"],
                    f"  val error {row['val_error_px']:.2f} px" if "val_error_px" in row else "")
        if on_epoch:
            on_epoch(row)
        if config.max_seconds is not None and time.time() - started > config.max_seconds:
            logger.info("time budget of %.0f s reached after epoch %d", config.max_seconds, epoch)
            end = epoch + 1
            break
    return GraphFitResult(best_error=best, best_epoch=best_epoch, epochs_run=end - start,
                          seconds=time.time() - started, history=history, output=output)
