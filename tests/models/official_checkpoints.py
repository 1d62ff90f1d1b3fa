"""Synthetic stand-ins for official checkpoint files (the real ones cannot be downloaded here).

Key names and shapes are generated from the published naming (uni-medical/STU-Net ``STUNet.py``;
research-contributions' ``model_swinvit.pt`` as read by MONAI's ``load_from``), not from medseg's
modules, so the importers are tested against the official layout. Containers mimic nnU-Net v1
``.model`` / v2 ``.pth`` files, including numpy scalars pickled under numpy<2 names.
"""
from __future__ import annotations

import collections
import pickle
from pathlib import Path

import numpy as np
import torch


def official_stunet_state(c0: int, blocks: int, num_classes: int = 105, in_channels: int = 1,
                          seed: int = 0) -> collections.OrderedDict:
    """Tensors named and shaped as an official STU-Net ``state_dict`` (6 stages, widths c0*[1,2,4,8,16,16])."""
    gen = torch.Generator().manual_seed(seed)
    dims = [c0 * m for m in (1, 2, 4, 8, 16, 16)]
    state: collections.OrderedDict = collections.OrderedDict()

    def put(name: str, *shape: int) -> None:
        state[name] = torch.randn(*shape, generator=gen) * 0.01

    def block(prefix: str, cin: int, cout: int, shortcut: bool) -> None:
        put(f"{prefix}.conv1.weight", cout, cin, 3, 3, 3)
        put(f"{prefix}.conv1.bias", cout)
        put(f"{prefix}.norm1.weight", cout)
        put(f"{prefix}.norm1.bias", cout)
        put(f"{prefix}.conv2.weight", cout, cout, 3, 3, 3)
        put(f"{prefix}.conv2.bias", cout)
        put(f"{prefix}.norm2.weight", cout)
        put(f"{prefix}.norm2.bias", cout)
        if shortcut:
            put(f"{prefix}.conv3.weight", cout, cin, 1, 1, 1)
            put(f"{prefix}.conv3.bias", cout)

    for stage in range(6):
        cin = in_channels if stage == 0 else dims[stage - 1]
        for b in range(blocks):
            block(f"conv_blocks_context.{stage}.{b}", cin if b == 0 else dims[stage], dims[stage], b == 0)
    for u in range(5):
        put(f"upsample_layers.{u}.conv.weight", dims[4 - u], dims[5 - u], 1, 1, 1)
        put(f"upsample_layers.{u}.conv.bias", dims[4 - u])
    for u in range(5):
        d = dims[4 - u]
        for b in range(blocks):
            block(f"conv_blocks_localization.{u}.{b}", 2 * d if b == 0 else d, d, b == 0)
    for u in range(5):
        put(f"seg_outputs.{u}.weight", num_classes, dims[4 - u], 1, 1, 1)
        put(f"seg_outputs.{u}.bias", num_classes)
    return state


class _Numpy1Pickler(pickle._Pickler):
    """Writes numpy>=2 globals under their numpy<2 names (``numpy.core.*``), as 2023 checkpoints have them."""

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "") or ""
        if module.startswith("numpy._core"):
            qualname = name or obj.__qualname__
            self.write(pickle.GLOBAL + module.replace("numpy._core", "numpy.core").encode() + b"\n"
                       + qualname.encode() + b"\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


class _Numpy1PickleModule:
    Pickler = _Numpy1Pickler
    Unpickler = pickle.Unpickler


def save_nnunet_v1(state: dict, path: Path, *, prefix: str = "") -> Path:
    """An nnU-Net v1 ``.model``: weights under ``state_dict`` plus the trainer's extras."""
    weights = collections.OrderedDict((prefix + k, v) for k, v in state.items())
    checkpoint = {
        "epoch": 4000,
        "state_dict": weights,
        "optimizer_state_dict": {"state": {0: {"momentum_buffer": torch.zeros(3)}},
                                 "param_groups": [{"lr": 1e-5, "momentum": 0.99, "nesterov": True, "params": [0]}]},
        "lr_scheduler_state_dict": None,
        "plot_stuff": ([np.float64(0.9), np.float64(0.5)], [np.float64(0.6)], [np.float64(0.55)],
                       [np.float64(0.81)]),
        "best_stuff": (3999, np.float64(-0.8), np.float64(0.83)),  # v1 unpacks exactly three
        "amp_grad_scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                            "growth_interval": 2000, "_growth_tracker": 17},
    }
    torch.save(checkpoint, path, pickle_module=_Numpy1PickleModule)
    return path


def save_nnunet_v2(state: dict, path: Path) -> Path:
    """An nnU-Net v2 ``.pth``: weights under ``network_weights`` plus ``init_args``, ``logging``..."""
    checkpoint = {
        "network_weights": collections.OrderedDict(state),
        "optimizer_state": {"state": {}, "param_groups": [{"lr": 1e-3, "params": []}]},
        "grad_scaler_state": {"scale": 1024.0, "_growth_tracker": 5},
        "logging": {"mean_fg_dice": [np.float64(0.7)], "ema_fg_dice": [np.float64(0.69)],
                    "train_losses": [-0.5], "epoch_start_timestamps": [1.7e9]},
        "_best_ema": np.float64(0.69),
        "current_epoch": 1000,
        "init_args": {"plans": {"plans_name": "nnUNetPlans", "configurations": {}}, "configuration": "3d_fullres",
                      "fold": 0, "dataset_json": {"labels": {"background": 0}}, "unpack_dataset": True,
                      "device": torch.device("cpu")},
        "trainer_name": "STUNetTrainer_small_ft",
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    torch.save(checkpoint, path)
    return path


def official_swin_ssl_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model_swinvit.pt`` naming for the encoder of a MONAI SwinUNETR-shaped model, plus pre-text extras.

    Official names: ``module.`` + the encoder path without ``swinViT.``, with ``mlp.fc1/fc2``.
    """
    gen = torch.Generator().manual_seed(1)
    state = {}
    for key, value in model.state_dict().items():
        if not key.startswith("swinViT."):
            continue
        official = "module." + key[len("swinViT."):].replace(".mlp.linear1.", ".mlp.fc1.").replace(
            ".mlp.linear2.", ".mlp.fc2.")
        state[official] = value.clone() if "relative_position_index" in key else torch.randn(
            value.shape, generator=gen)
    dim = state["module.patch_embed.proj.weight"].shape[0] * 16
    state["module.norm.weight"] = torch.ones(dim)
    state["module.norm.bias"] = torch.zeros(dim)
    state["module.rotation_head.weight"] = torch.randn(4, dim, generator=gen)
    state["module.contrastive_head.weight"] = torch.randn(512, dim, generator=gen)
    return state
