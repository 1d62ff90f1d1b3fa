"""The cascade on a synthetic large volume with a small object: found, and only the ROI runs at full res."""
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference

from medseg.cascade.pipeline import CascadePipeline
from medseg.core.errors import MedsegError
from tests.cascade._models import stage_models


def _scan(lo=(60, 20, 40), size=8, shape=(96, 96, 96), spacing=1.0):
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 0.05, shape).astype(np.float32)
    truth = np.zeros(shape, bool)
    truth[tuple(slice(a, a + size) for a in lo)] = True
    x[truth] += 1.0
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = (-40.0, 12.5, 100.0)
    return MetaTensor(torch.from_numpy(x)[None], affine=torch.as_tensor(affine)), truth


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_finds_small_object_and_processes_only_the_roi():
    image, truth = _scan()
    s1, s2 = stage_models()
    result = CascadePipeline(s1, s2, margin_mm=6.0)(image)
    pred = result.label[0].numpy() == 1
    assert result.found == {"organ": True}
    assert _dice(pred, truth) > 0.85
    assert tuple(result.label.shape[1:]) == truth.shape
    np.testing.assert_allclose(np.asarray(result.label.affine), np.asarray(image.affine))
    roi = result.rois["organ"]
    assert all(a <= 60 - 6 + 1 for a in roi.start[:1])          # margin kept around the object
    # a full-resolution sliding window with the same stage-2 patch over the whole scan
    count = {"n": 0}

    def full_net(x):
        count["n"] += x.shape[0]
        return torch.zeros((x.shape[0], 2, *x.shape[2:]))

    sliding_window_inference(torch.zeros((1, 2, *truth.shape)), (32, 32, 32), 1, full_net, overlap=0.25)
    c = result.counters
    assert c["stage2_windows"] == 1 and count["n"] >= 27
    assert c["stage2_voxels"] < 0.05 * truth.size                # full-res work ~ the ROI, not the scan
    assert c["stage1_voxels"] < 0.1 * truth.size                # stage 1 ran on the coarse grid


def test_nothing_found_gives_empty_mask():
    image, _ = _scan()
    image = MetaTensor(torch.zeros_like(image.as_tensor()), affine=image.affine)
    s1, s2 = stage_models()
    result = CascadePipeline(s1, s2)(image)
    assert result.not_found == ["organ"] and int(result.label.sum()) == 0
    assert result.counters["stage2_windows"] == 0


def test_object_at_border_and_stage2_at_another_spacing():
    image, truth = _scan(lo=(88, 0, 90), size=6)
    s1, s2 = stage_models(spacing1=(6.0, 6.0, 6.0), spacing2=(0.5, 0.5, 0.5))
    result = CascadePipeline(s1, s2, margin_mm=10.0)(image)
    roi = result.rois["organ"]
    assert roi.stop[0] == 96 and roi.start[1] == 0 and roi.stop[2] == 96
    assert _dice(result.label[0].numpy() == 1, truth) > 0.8


def test_label_set_mismatch_is_an_error():
    s1, s2 = stage_models(labels2=("background", "liver"))
    with pytest.raises(MedsegError, match="label sets"):
        CascadePipeline(s1, s2)


def test_precomputed_prior_skips_stage1():
    image, truth = _scan()
    s1, s2 = stage_models()
    coarse = torch.zeros((2, 24, 24, 24))
    coarse[1, 15:17, 5:7, 10:12] = 1.0
    coarse[0] = 1 - coarse[1]
    result = CascadePipeline(s1, s2, margin_mm=6.0)(image, prior=coarse)
    assert result.counters["stage1_windows"] == 0 and result.found == {"organ": True}
    assert _dice(result.label[0].numpy() == 1, truth) > 0.8


class _Levels(torch.nn.Module):
    """Nearest-intensity-level classifier: label k for intensity ~k (k = 0, 1, 2)."""

    def __init__(self, card):
        super().__init__()
        self.card = card
        self.w = torch.nn.Parameter(torch.zeros(()), requires_grad=False)

    def forward(self, x):
        return torch.cat([-10 * (x[:, :1] - k) ** 2 for k in range(3)], 1)


def test_two_organs_each_in_its_own_roi():
    from medseg.core.card import Intensity, ModelCard

    labels = ("background", "left", "right")
    c1 = ModelCard(name="lv1", spatial_dims=3, in_channels=1, out_channels=3, labels=labels, roi_size=(16,) * 3,
                   spacing=(4.0,) * 3, intensity=Intensity(kind="none"))
    c2 = c1.replace(name="lv2", in_channels=3, channel_names=("image", "p_left", "p_right"), spacing=None,
                    roi_size=(24,) * 3)
    image, truth_a = _scan(lo=(10, 10, 10), size=8)
    x = image.as_tensor().clone()
    x[0, 72:80, 72:80, 64:72] += 2.0                # on the 4 mm grid: no partial-volume "left" ring
    result = CascadePipeline(_Levels(c1), _Levels(c2), margin_mm=4.0)(MetaTensor(x, affine=image.affine))
    lab = result.label[0].numpy()
    assert result.found == {"left": True, "right": True}
    assert _dice(lab == 1, truth_a) > 0.8 and (lab[72:80, 72:80, 64:72] == 2).mean() > 0.8
    assert result.counters["stage2_windows"] == 2
