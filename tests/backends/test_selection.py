import logging
import sys

import pytest
import torch

from medseg.backends import availability, selection
from medseg.backends.selection import resolve
from medseg.core.errors import MedsegError

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def no_runtimes(monkeypatch):
    """Make `import openvino` and `import onnxruntime` fail, as when medseg[cpu] is not installed."""
    for name in ("openvino", "onnxruntime"):
        monkeypatch.setitem(sys.modules, name, None)


def test_auto_on_cpu_picks_the_first_installed_measured_default():
    expected = next(((b, p) for b, p in selection.CPU_DEFAULTS if availability.is_available(b)), None)
    plan = resolve("auto", "auto", CPU)
    assert (plan.backend, plan.precision) == expected
    assert plan.reason.startswith("auto")


def test_auto_without_runtimes_falls_back_to_torch_with_one_line_naming_the_extra(no_runtimes, caplog):
    with caplog.at_level(logging.INFO, logger="medseg"):
        plan = resolve("auto", "auto", CPU)
    assert (plan.backend, plan.precision) == ("torch", "fp32")
    lines = [r.getMessage() for r in caplog.records if "medseg[cpu]" in r.getMessage()]
    assert len(lines) == 1


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_explicit_missing_backend_names_the_extra(no_runtimes, backend):
    with pytest.raises(MedsegError, match="not installed") as info:
        resolve(backend, "fp32", CPU)
    assert "medseg[cpu]" in str(info.value)


def test_gpu_gets_torch_amp_and_rejects_cpu_runtimes():
    assert (resolve("auto", "auto", CUDA).backend, resolve("auto", "auto", CUDA).precision) == ("torch", "fp16")
    assert resolve("torch", "fp32", CUDA).precision == "fp32"
    with pytest.raises(MedsegError, match="CPU only"):
        resolve("openvino", "auto", CUDA)


def test_fp16_on_cpu_and_unknown_names_are_user_errors():
    with pytest.raises(MedsegError, match="CUDA"):
        resolve("torch", "fp16", CPU)
    with pytest.raises(MedsegError, match="unknown backend 'tensorrt'"):
        resolve("tensorrt", "fp32", CPU)
    with pytest.raises(MedsegError, match="unknown precision"):
        resolve("torch", "int4", CPU)


@pytest.mark.skipif(not availability.is_available("onnxruntime"), reason="onnxruntime not installed")
def test_onnxruntime_has_no_bf16_on_cpu():
    with pytest.raises(MedsegError, match="openvino"):
        resolve("onnxruntime", "bf16", CPU)


def test_bf16_request_without_native_bf16_uses_fp32(monkeypatch):
    monkeypatch.setattr(selection, "cpu_supports_bf16", lambda: False)
    assert resolve("auto", "bf16", CPU).precision == "fp32"
    monkeypatch.setattr(selection, "cpu_supports_bf16", lambda: True)
    plan = resolve("auto", "bf16", CPU)
    assert plan.precision == "bf16"
    assert plan.backend == ("openvino" if availability.is_available("openvino") else "torch")
