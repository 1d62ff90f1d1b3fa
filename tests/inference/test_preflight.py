"""The TTA policy (card, user, CPU default for large scans) and the one-line time estimate of long jobs."""
from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor

from medseg.inference import preflight
from medseg.inference.predictor import PredictOptions, Predictor
from medseg.inference.preflight import CPU_TTA_MAX_WINDOW_VOXELS, default_tta
from tests.inference._models import threshold_model


def test_default_tta_follows_user_then_card_then_device_and_size():
    card = threshold_model().card
    big = CPU_TTA_MAX_WINDOW_VOXELS // (16 ** 3) + 1
    assert default_tta(True, card, windows=big, roi=(16, 16, 16)) == (True, "--tta")
    assert default_tta(False, card, windows=1, roi=(16, 16, 16))[0] is False
    assert default_tta(None, card.replace(tta="off"), windows=1, roi=(16, 16, 16)) == (False, "model card: off")
    assert default_tta(None, card.replace(tta="on"), windows=big, roi=(16, 16, 16))[0] is True
    assert default_tta(None, card, windows=big, roi=(16, 16, 16), device="cuda")[0] is True
    assert default_tta(None, card, windows=big - 1, roi=(16, 16, 16))[0] is True
    on, reason = default_tta(None, card, windows=big, roi=(16, 16, 16))
    assert on is False and "--tta turns it on" in reason and f"{big} windows of 16x16x16" in reason


class _Counted(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.card, self.passes = inner, inner.card, 0

    def forward(self, x):
        self.passes += x.shape[0]
        return self.inner(x)


def _scan(shape) -> MetaTensor:
    return MetaTensor(torch.from_numpy(np.random.default_rng(0).uniform(0.1, 2, shape).astype(np.float32))[None],
                      affine=torch.eye(4, dtype=torch.float64))


def test_large_scans_on_cpu_run_without_tta_unless_asked(monkeypatch):
    monkeypatch.setattr(preflight, "CPU_TTA_MAX_WINDOW_VOXELS", 3 * 16 ** 3)   # "large" = over 3 windows
    notices = []
    monkeypatch.setattr(preflight, "LONG_JOB_SECONDS", -1.0)                   # every job is "long"
    monkeypatch.setattr(preflight.logger, "warning", lambda message, *args: notices.append(message % args))
    net = _Counted(threshold_model())
    large = Predictor(net, options=PredictOptions(device="cpu", batch_size=4)).predict(_scan((40, 24, 24)),
                                                                                      path="big.nii.gz")
    windows = large.settings["windows"]["run"]
    assert windows == 16 and net.passes == windows                           # one pass per window
    assert large.settings["tta"] is False and large.settings["tta_reason"].startswith("CPU default: off")
    assert large.settings["mirror_axes"] == []
    assert len(notices) == 1 and notices[0].startswith("big.nii.gz: 16 windows x 1 passes, ~")
    assert "--fast ~" in notices[0] and "--no-tta" not in notices[0]

    net.passes = 0
    asked = Predictor(net, options=PredictOptions(device="cpu", tta=True, batch_size=4)).predict(_scan((40, 24, 24)))
    assert asked.settings["tta"] is True and net.passes == 8 * windows
    net.passes = 0
    small = Predictor(net, options=PredictOptions(device="cpu")).predict(_scan((16, 16, 16)))
    assert small.settings["tta"] is True and small.settings["tta_reason"] == "default on (CPU, small scan)"
    assert net.passes == 8


def test_estimate_line_names_the_scan_even_without_a_path():
    # nnU-Net folders estimate before the case path reaches the engine: the line must not say "None"
    assert preflight.estimate_line(None, 3, 1, 2.0).startswith("this scan: 3 windows x 1 passes")
