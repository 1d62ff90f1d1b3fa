"""Export a segmentation network to ONNX for one fixed window, and fingerprint its weights.

The export runs the model in eval mode (so deep supervision returns only the full-resolution logits),
with the window's spatial size fixed and the batch axis dynamic. The model is restored to its former
mode afterwards.

Tracing runs the network once on a zero window: for nnU-Net's 128^3 CT network that forward pass was 8 of
the 9.6 s of the export, on a model's first run. A fully convolutional network says so with a
``trace_window(roi)`` method (a small window it accepts, e.g. :class:`medseg.nnunet.network.NnUNetNetwork`):
it is traced there with dynamic spatial axes, which gives the same graph (no shape is baked in), and the
file's input is then fixed to the window, so every runtime reads the same declaration as from a full-size
trace (export 1.9-2.8 s; ``tests/backends/test_export_trace.py`` checks the runtimes' logits on the window).
"""
from __future__ import annotations

import hashlib
import io
import warnings
import weakref
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import torch
from torch import nn

OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
IN_MEMORY_BYTES = 1 << 30   # a small trace is fixed in memory: protobuf holds at most 2 GB, so larger weights trace at the window


class ExportError(RuntimeError):
    """The model cannot be exported to ONNX (the caller falls back to PyTorch)."""


_HASHES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, str]] = weakref.WeakKeyDictionary()


def _state_fingerprint(model: nn.Module) -> tuple:
    """Which tensors the state_dict holds and their in-place version counters: changes whenever a weight does."""
    return tuple((name, t.data_ptr(), t._version, tuple(t.shape)) for name, t in model.state_dict().items())


def weights_sha256(model: nn.Module) -> str:
    """sha256 over the state_dict: every tensor's name, dtype, shape and raw bytes, in name order.

    Remembered per module until a tensor is replaced or changed in place (a 350 MB nnU-Net network takes
    ~0.4 s to hash; a run asks for it when it looks up the guard's verdict and again for the compiled model)."""
    fingerprint = _state_fingerprint(model)
    known = _HASHES.get(model)
    if known is not None and known[0] == fingerprint:
        return known[1]
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(t.view(torch.uint8).numpy())   # the buffer itself: no copy
    _HASHES[model] = (fingerprint, digest.hexdigest())
    return _HASHES[model][1]


def remember_weights_sha256(model: nn.Module, identity: str) -> None:
    """Use ``identity`` as :func:`weights_sha256` of ``model`` while its tensors stay as they are now: for a network
    loaded from a file whose sha256 is already known (an nnU-Net fold), hashing its tensors again would only cost
    time (0.3 s for nnU-Net's default CT network). ``identity`` must name the weights as uniquely as a hash
    (e.g. ``"file:<sha256 of the checkpoint>"``)."""
    _HASHES[model] = (_state_fingerprint(model), identity)


def architecture_sha256(model: nn.Module) -> str:
    """sha256 of the module tree's repr: strides, kernels and activations that weights alone do not fix."""
    return hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}\n{model!r}".encode()).hexdigest()


def infer_in_channels(model: nn.Module) -> int:
    """Input channels: ``model.card.in_channels`` if present, else the first convolution's input width."""
    card = getattr(model, "card", None)
    if card is not None and getattr(card, "in_channels", None):
        return int(card.in_channels)
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return int(module.in_channels)
    raise ExportError("cannot tell the model's input channels; pass in_channels=")


def _first_output(out):
    return out[0] if isinstance(out, (tuple, list)) else out


class _EvalLogits(nn.Module):
    """Wraps a model so the exported graph has one output even if forward returns a tuple."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _first_output(self.model(x))


def export_onnx(
    model: nn.Module,
    path: str | PathLike,
    *,
    roi_size: Sequence[int],
    in_channels: int,
    batch_size: int = 1,
) -> None:
    """Write ``model`` as ONNX for input ``(N, in_channels, *roi_size)`` with a dynamic batch axis N.

    Raises :class:`ExportError` (with the exporter's reason) when the model cannot be traced.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    roi = tuple(int(s) for s in roi_size)
    traced = trace_size(model, roi)
    example = torch.zeros(batch_size, in_channels, *traced, device=device)
    axes: dict[int, str] = {0: "batch"}
    if traced != roi:   # traced smaller: spatial axes dynamic, the input fixed to the window afterwards
        axes |= {2 + i: f"spatial_{i}" for i in range(len(roi))}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation and instance-norm notes
            buffer = io.BytesIO() if traced != roi else None   # fixed in memory, written once
            torch.onnx.export(
                _EvalLogits(model), (example,), buffer if buffer is not None else str(path),
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                opset_version=OPSET, do_constant_folding=True, dynamo=False,
            )
        if buffer is not None:
            Path(path).write_bytes(_with_input_window(buffer.getvalue(), roi))
    except Exception as exc:  # any exporter failure means "run this model in PyTorch"
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {first}") from exc
    finally:
        model.train(was_training)


def trace_size(model: nn.Module, roi: Sequence[int]) -> tuple[int, ...]:
    """The spatial size to trace ``model`` at for window ``roi``: the model's ``trace_window(roi)`` when it
    has one (a fully convolutional network), else ``roi``."""
    roi = tuple(int(s) for s in roi)
    smallest = getattr(model, "trace_window", None)
    if not callable(smallest) or sum(p.numel() * p.element_size() for p in model.parameters()) > IN_MEMORY_BYTES:
        return roi
    size = tuple(int(s) for s in smallest(roi))
    if len(size) != len(roi) or any(s < 1 or s > r for s, r in zip(size, roi)):
        return roi
    return size


def _with_input_window(data: bytes, roi: Sequence[int]) -> bytes:
    """The ONNX model ``data`` with the window's spatial size declared on its input (batch stays dynamic)
    and no traced intermediate shapes, so runtimes infer them for the window."""
    import onnx

    model = onnx.load_from_string(data)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for i, size in enumerate(roi):
        dims[2 + i].Clear()
        dims[2 + i].dim_value = int(size)
    del model.graph.value_info[:]
    return model.SerializeToString()
