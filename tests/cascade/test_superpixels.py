"""DeepOrgan regional stage on a synthetic volume: SLIC superpixels, zoom-out boxes, projection to voxels."""
import numpy as np
import torch
from torch import nn

from medseg.cascade.superpixels import (
    RegionalStage,
    ZoomOutNet,
    superpixels,
    zoom_out_boxes,
)


class CentreMean(nn.Module):
    """A fixed 'classifier': organ when the centre of the innermost-scale box is bright on average."""

    def forward(self, x):
        m = x[:, 0, 3:-3, 3:-3, 3:-3].mean(dim=(1, 2, 3))
        fg = 20 * (m - 0.5)
        return torch.stack([-fg, fg], 1)


def _ball(shape=(40, 40, 40), centre=(20, 18, 22), r=8):
    g = np.indices(shape)
    truth = sum((g[i] - c) ** 2 for i, c in enumerate(centre)) <= r * r
    rng = np.random.default_rng(1)
    return (truth + rng.normal(0, 0.05, shape)).astype(np.float32), truth


def test_superpixels_cover_the_volume_and_follow_the_edge():
    x, truth = _ball()
    labels = superpixels(x, n_segments=120, compactness=0.1)
    assert labels.shape == x.shape and labels.min() >= 1 and 20 < labels.max() < 400
    purity = [max(truth[labels == i].mean(), 1 - truth[labels == i].mean()) for i in np.unique(labels)]
    assert np.mean(purity) > 0.9


def test_regional_stage_projects_superpixel_probabilities_to_voxels():
    x, truth = _ball()
    stage = RegionalStage(CentreMean(), n_segments=120, scales=(1.0, 2.0), patch=8)
    prob = stage(torch.from_numpy(x)[None])
    assert prob.shape == truth.shape
    pred = prob.numpy() > 0.5
    assert 2 * (pred & truth).sum() / (pred.sum() + truth.sum()) > 0.85
    # constant within each superpixel
    sp = stage.last_superpixels
    for i in np.unique(sp)[:10]:
        assert np.ptp(prob.numpy()[sp == i]) == 0


def test_zoom_out_boxes_and_net_shapes():
    x, _ = _ball(shape=(20, 20, 20), centre=(10, 10, 10), r=4)
    vol = torch.from_numpy(np.stack([x, x]))
    labels = superpixels(x, n_segments=30)
    boxes, ids = zoom_out_boxes(vol, labels, scales=(1.0, 2.0, 3.0), patch=8)
    assert boxes.shape == (len(ids), 6, 8, 8, 8) and len(ids) == len(np.unique(labels))
    assert ZoomOutNet(in_channels=2, n_scales=3)(boxes).shape == (len(ids), 2)


def test_regional_stage_inside_the_cascade():
    from monai.data import MetaTensor

    from medseg.cascade.pipeline import CascadePipeline
    from tests.cascade._models import stage_models

    x, truth = _ball(shape=(48, 48, 48), centre=(30, 20, 24), r=5)
    s1, s2 = stage_models()
    regional = RegionalStage(CentreMean(), n_segments=60, scales=(1.0, 2.0), patch=8)
    result = CascadePipeline(s1, s2, margin_mm=6.0, regional=regional)(MetaTensor(torch.from_numpy(x)[None]))
    pred = result.label[0].numpy() == 1
    assert result.found == {"organ": True} and regional.last_superpixels is not None
    assert 2 * (pred & truth).sum() / (pred.sum() + truth.sum()) > 0.8
