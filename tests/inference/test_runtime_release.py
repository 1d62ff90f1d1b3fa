"""A compiled runtime that fails the accuracy guard is let go (its network and buffers freed for the rest of
the run: 1.9 GB for a 105-class 128^3 window), and what it was stays in the logs and the sidecar."""
import gc
import weakref

import torch

from medseg.inference.runtime import GuardedRuntime
from medseg.models.heads import head_for
from tests.inference._models import threshold_model


class _Compiled:
    """A 'compiled' runtime holding a large buffer, that predicts background everywhere."""

    backend, precision, reason = "openvino", "fp32", "auto: OpenVINO fp32"

    def __init__(self) -> None:
        self.buffer = torch.zeros(1 << 20)

    def __call__(self, x):
        out = torch.zeros(x.shape[0], 3, *x.shape[2:])
        out[:, 0] = 50.0
        return out

    def describe(self) -> str:
        return "openvino fp32 (compiled)"


def test_a_runtime_that_fails_the_guard_is_freed_and_still_described():
    model = threshold_model().eval()
    compiled = _Compiled()
    alive = weakref.ref(compiled)
    guarded = GuardedRuntime(compiled, model, head_for(model.card))
    del compiled
    x = torch.linspace(0, 2, 16 ** 3).view(1, 1, 16, 16, 16)   # all three classes present
    with torch.no_grad():
        reference = model(x).float()
    assert torch.equal(guarded(x), reference)         # PyTorch's answer for the window that failed
    gc.collect()
    assert not guarded.trusted and alive() is None    # nothing holds the compiled runtime any more
    assert guarded.backend == "torch" and "openvino fp32 (compiled)" in guarded.describe()
    assert guarded.reason.startswith("auto: OpenVINO fp32; failed the run-time guard")
    assert torch.equal(guarded(x), reference)
