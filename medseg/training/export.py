"""Export a trained checkpoint to ``pretrained/``: safetensors weights, a JSON card and its sha256."""
from __future__ import annotations

import json
from os import PathLike
from pathlib import Path

import torch

from medseg.core.atomic import atomic_path, atomic_write_text
from medseg.core.hashing import sha256_file
from medseg.training.checkpoint import load_checkpoint


def export_weights(checkpoint: str | PathLike, out_dir: str | PathLike, file_name: str,
                   extra: dict | None = None) -> dict:
    """Write the model weights of ``checkpoint`` as ``out_dir/file_name`` (safetensors) plus
    ``<file_name>.json`` (card, recipe, training summary, sha256). Returns that JSON as a dict."""
    from safetensors.torch import save_file

    state = load_checkpoint(checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.contiguous() for k, v in state["model"].items() if isinstance(v, torch.Tensor)}
    with atomic_path(out / file_name) as temp:
        save_file(weights, str(temp))
    digest = sha256_file(out / file_name)
    summary = {
        "file": file_name,
        "sha256": digest,
        "epoch": state["epoch"],
        "best_val_dice": state["best"],
        "best_epoch": state["best_epoch"],
        "card": state["card"],
        "recipe": state["recipe"],
        "history_last": state["history"][-1] if state["history"] else {},
        **(extra or {}),
    }
    atomic_write_text(out / f"{file_name}.json", json.dumps(summary, indent=2))
    return summary
