"""Whole scans: the body / non-zero mask, windows over its box only, skipped windows, exact paste-back."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from torch import nn

from medseg.core.card import CardError, Intensity, ModelCard
from medseg.inference.crop import (
    body_mask,
    bounding_box,
    crop_mode,
    ct_threshold_normalized,
    grow_to,
    nonzero_mask,
)
from medseg.inference.predictor import PredictOptions, Predictor
from medseg.inference.sliding_window import EngineOptions, sliding_window_labels
from medseg.inference.windows import WindowGrid
from tests.inference._models import threshold_card


def _phantom_ct(shape=(64, 60, 24)) -> np.ndarray:
    """Air, an elliptic trunk (40 HU) holding a lung (-850 HU, open to the top slice), a 2-voxel speck."""
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    ct = np.full(shape, -1000.0, np.float32)
    trunk = ((x - 0.1) / 0.6) ** 2 + (y / 0.5) ** 2 < 1
    lung = ((x - 0.1) / 0.25) ** 2 + (y / 0.2) ** 2 < 1
    ct[trunk, 2:20] = 40
    ct[lung, 2:21] = -850
    ct[2:4, 2, 10] = 200
    return ct


def test_body_mask_fills_the_lung_and_drops_specks():
    ct = _phantom_ct()
    mask = body_mask(ct)
    assert mask[32 + 3, 30, 10]              # inside the lung: part of the body
    assert not mask[2, 2, 10]                # the speck outside is not
    box = bounding_box(mask, "body", margin=0)
    assert box is not None and box.mode == "body"
    trunk = ct > -500
    trunk[2:4, 2, 10] = False
    expected = bounding_box(trunk, "x", margin=0)
    assert (box.start, box.stop) == (expected.start, expected.stop)
    assert box.stop[2] == 20 and box.start[2] == 2 and box.fraction < 0.6


def test_nonzero_mask_and_box_margin_and_growth():
    image = np.zeros((1, 30, 30, 30), np.float32)
    image[0, 10:15, 12:20, 5:9] = 3.0
    image[0, 12, 15, 6] = 0.0                # a zero inside: a hole, filled
    mask = nonzero_mask(image)
    assert mask[12, 15, 6]
    box = bounding_box(mask, "nonzero", margin=2)
    assert (box.start, box.stop) == ((8, 10, 3), (17, 22, 11))
    grown = grow_to(box, (16, 16, 16))
    assert grown.size == (16, 16, 16) and all(0 <= a and b <= 30 for a, b in zip(grown.start, grown.stop))
    assert grown.start[2] >= 0 and grown.stop[0] - grown.start[0] == 16


def test_crop_mode_from_card_and_modality():
    card = threshold_card()
    assert crop_mode(card) == "nonzero"
    assert crop_mode(card.replace(modality="CT")) == "body"
    assert crop_mode(card.replace(modality="CT", crop="none")) == "none"
    with pytest.raises(CardError, match="crop"):
        card.replace(crop="lungs")
    with pytest.raises(CardError, match="tta"):
        card.replace(tta="sometimes")


def test_ct_threshold_after_nnunet_normalisation():
    assert ct_threshold_normalized(100.0, 200.0, -1000.0, 1500.0) == pytest.approx(-3.0)
    assert ct_threshold_normalized(100.0, 200.0, -100.0, 1500.0) is None   # fat and air clipped together


class _Counting(nn.Module):
    """A random 2-layer conv net (receptive field 5) that counts the windows it sees."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv3d(1, 6, 3, padding=1), nn.LeakyReLU(), nn.Conv3d(6, 3, 3, padding=1))
        self.windows = 0

    def forward(self, x):
        self.windows += x.shape[0]
        return self.net(x)


def _engine(image, net, mask=None, roi=(16, 16, 16), progress=None, probabilities=False):
    options = EngineOptions(roi=roi, overlap=0.5, batch_size=3, probabilities=probabilities)
    return sliding_window_labels(image, net, channels=3, activation="softmax", options=options, mask=mask,
                                 progress=progress)


def test_skipped_windows_change_nothing_inside_the_mask():
    torch.manual_seed(1)
    image = torch.randn(1, 40, 32, 32)
    mask = torch.zeros(40, 32, 32, dtype=torch.bool)
    mask[:6, :6, :6] = True                   # two corners: the box is the whole grid, the middle is empty
    mask[-5:, -5:, -5:] = True
    full_net, masked_net = _Counting(), _Counting()
    full = _engine(image, full_net)
    calls = []
    masked = _engine(image, masked_net, mask=mask, progress=lambda d, t: calls.append((d, t)),
                     probabilities=True)
    grid = WindowGrid.plan((40, 32, 32), (16, 16, 16), 0.5)
    expected_run = sum(bool(mask[tuple(slice(s, s + 16) for s in st)].any()) for st in grid.windows)
    assert masked.windows_run == expected_run == masked_net.windows
    assert masked.windows_skipped == len(grid.windows) - expected_run > 0
    assert full_net.windows == len(grid.windows)
    assert calls[0] == (0, expected_run) and calls[-1] == (expected_run, expected_run)
    assert torch.equal(masked.labels[mask], full.labels[mask])             # exact inside the mask
    assert masked.crop is not None and masked.crop.whole
    never = torch.ones_like(mask)                                           # voxels no window reached
    for st in (grid.windows[i] for i in range(len(grid.windows))):
        if mask[tuple(slice(s, s + 16) for s in st)].any():
            never[tuple(slice(s, s + 16) for s in st)] = False
    assert never.any() and not masked.labels[never].any()                  # background there
    assert torch.all(masked.probabilities[0][never] == 1)


def test_windows_cover_the_mask_box_only_and_paste_back():
    torch.manual_seed(2)
    image = torch.randn(1, 64, 64, 64)
    mask = torch.zeros(64, 64, 64, dtype=torch.bool)
    mask[20:30, 25:40, 30:34] = True
    net = _Counting()
    result = _engine(image, net, mask=mask)
    box = result.crop
    assert (box.start, box.stop) == ((17, 23, 24), (33, 42, 40))          # the mask's box grown to the roi
    assert result.labels.shape == (64, 64, 64)
    outside = torch.ones(64, 64, 64, dtype=torch.bool)
    outside[box.slices] = False
    assert not result.labels[outside].any()
    alone = _engine(image[(slice(None), *box.slices)].clone(), _Counting())  # the box on its own
    assert torch.equal(result.labels[box.slices], alone.labels)
    assert net.windows == result.windows_run < 27


def test_an_empty_mask_runs_no_window():
    net = _Counting()
    result = _engine(torch.randn(1, 32, 32, 32), net, mask=torch.zeros(32, 32, 32, dtype=torch.bool),
                     probabilities=True)
    assert net.windows == 0 and not result.labels.any() and torch.all(result.probabilities[0] == 1)


class _HU(nn.Module):
    """Pointwise (1x1x1) classes from integer HU, no ties: 1 above 50.5 HU, 2 above 150.5 HU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([0.0, 0.01, 0.02]).view(3, 1, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, -0.505, -3.01]))
        self.windows = 0

    def forward(self, x):
        self.windows += x.shape[0]
        return self.conv(x)


def _ct_card() -> ModelCard:
    return ModelCard(name="hu", spatial_dims=3, in_channels=1, out_channels=3, labels=("background", "soft", "dense"),
                     roi_size=(64, 64, 16), spacing=None, intensity=Intensity("none"), divisible_by=1,
                     modality="CT", orientation=None)


def test_body_crop_on_a_real_ct_is_exact_inside_and_background_outside(shared_data):
    from medseg.io import read_image

    scan = read_image(shared_data / "totalsegmentator_example" / "example_ct_sm.nii.gz")
    data = torch.full((1, 162, 141, 30), -1024, dtype=scan.dtype)   # a wider field of view: 20 voxels of air
    data[:, 20:142, 20:121] = scan
    data[:, 5:10, 60:70, 10:20] = 300                              # a dense object away from the body
    image = MetaTensor(data, affine=scan.affine)
    runs = {}
    for crop in ("none", "body"):
        net = _HU()
        predictor = Predictor(net, _ct_card(), PredictOptions(tta=False, crop=crop, device="cpu"))
        runs[crop] = (predictor.predict(image), net.windows)
    (plain, plain_windows), (cropped, cropped_windows) = runs["none"], runs["body"]
    box = cropped.settings["crop"]
    assert box["mode"] == "body" and plain.settings["crop"] is None
    inside = tuple(slice(a, b) for a, b in zip(box["start"], box["stop"]))
    assert box["start"][0] >= 18 and box["stop"][1] <= 123 and box["fraction"] < 0.8
    a, b = plain.labels[0], cropped.labels[0]
    body = torch.from_numpy(body_mask(data[0].float()))
    assert torch.equal(a[body], b[body])                          # exact in the body
    differ = a != b                                               # elsewhere in the box: only where no window ran
    assert not differ[body].any() and not b[differ & ~body].any()
    outside = torch.ones_like(b, dtype=torch.bool)
    outside[inside] = False
    assert not b[outside].any() and a[outside].any()              # the dense object is outside: background
    assert torch.equal(plain.labels.affine, cropped.labels.affine) and a.shape == b.shape
    assert cropped_windows < plain_windows
    assert cropped.settings["windows"]["run"] == cropped_windows


def test_axes_where_cropping_saves_no_window_keep_the_uncropped_windows():
    from medseg.inference.crop import CropBox
    from medseg.inference.sliding_window import keep_full_axes

    # 202 voxels need 3 windows of 128 at overlap 0.5, and so does a 193-voxel box: that axis stays whole;
    # 120 of 244 needs 1 window instead of 3: cropped
    box = CropBox((60, 3, 0), (188, 196, 224), (244, 202, 224), "body")
    kept = keep_full_axes(box, (128, 128, 128), 0.5)
    assert (kept.start, kept.stop) == ((60, 0, 0), (188, 202, 224))


def test_an_unknown_crop_mode_is_one_clear_error():
    from medseg.core.errors import MedsegError

    with pytest.raises(MedsegError, match="unknown --crop 'lungs'"):
        Predictor(_HU(), _ct_card(), PredictOptions(crop="lungs", device="cpu"))
