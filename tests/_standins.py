"""Trained-like stand-in weights for benchmarks and tests that cannot ship trained networks.

Seeded random weights leave a network's logits near-tied almost everywhere, so any fp32 rounding difference
between two runtimes flips labels and no accuracy comparison means anything. Multiplying the output head's
weights (nnU-Net's ``decoder.seg_layers.*.weight``) by :data:`HEAD_SHARPENING` widens the logit margins the
way training does, while every class still wins somewhere ("random but decisive heads"). Used by the
TotalSegmentator stand-ins (``tests/totalseg/_parts.py``, the same factor) and ``benchmarks/bench_nnunet.py``.
Needs only torch, so nnU-Net's peer environment can call it too.
"""
from __future__ import annotations

HEAD_SHARPENING = 20.0


def sharpen_heads(state_dict: dict, factor: float = HEAD_SHARPENING) -> dict:
    """Scale the segmentation heads' weights of an nnU-Net state dict in place (and return it)."""
    import torch

    with torch.no_grad():
        for name, tensor in state_dict.items():
            if name.startswith("decoder.seg_layers") and name.endswith("weight"):
                tensor.mul_(factor)
    return state_dict
