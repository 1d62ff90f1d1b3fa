"""Landmark-regression training: pixel-unit loss, augmentation that moves landmarks, loss going down,
resumable checkpoints, and loading cases from image/mask files."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from medseg.models import create_model
from medseg.models.hybridgnet import HybridOutput
from medseg.training.graph import (
    GraphTrainConfig,
    augment_batch,
    evaluate_landmarks,
    fit_graph,
    graph_loss,
    load_landmark_case,
)
from medseg.transforms.landmarks import landmarks_to_mask

S = 64


def ellipse(cx, cy, a, b, n):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False) - np.pi / 2     # from the top, clockwise on screen
    return np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], 1)


def ellipse_cases(n=6, seed=0):
    """Two bright 'lungs' per image whose landmark contours are known exactly."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        dx, dy = rng.uniform(-4, 4, 2)
        right = ellipse(S * 0.3 + dx, S * 0.5 + dy, S * 0.12, S * 0.26, 44)
        left = ellipse(S * 0.7 + dx, S * 0.5 + dy, S * 0.12, S * 0.28, 50)
        image = (landmarks_to_mask({"r": right, "l": left}, (S, S)) > 0).astype(np.float32) * 0.6 + 0.2
        cases.append({"name": f"case{i}", "image": torch.from_numpy(image)[None],
                      "landmarks": torch.from_numpy(np.concatenate([right, left])).float()})
    return cases


def small_model():
    torch.manual_seed(0)
    return create_model("hybridgnet", roi_size=(S, S), width=2, K=3)


def test_loss_is_in_input_pixels():
    template_pool = torch.full((47, 94), 1 / 94)
    target = torch.rand(2, 94, 2) * S
    exact = (target + 0.5) / S
    zeros = torch.zeros(2, 64)
    perfect = HybridOutput(exact, template_pool @ exact, exact, zeros, zeros)
    loss, parts = graph_loss(perfect, target, template_pool, S, kl_weight=1e-5)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    shifted = HybridOutput(exact + torch.tensor([1.0 / S, 0.0]), template_pool @ exact, exact, zeros, zeros)
    _, parts = graph_loss(shifted, target, template_pool, S, kl_weight=1e-5)
    assert parts["mse_px2"] == pytest.approx(0.5, rel=1e-4)        # 1 px in x, 0 in y


def test_augmentation_moves_landmarks_with_the_image():
    points = torch.tensor([[[14.0, 20.0], [40.0, 15.0], [30.0, 44.0], [50.0, 50.0]]])
    ys, xs = torch.meshgrid(torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32), indexing="ij")
    image = sum(torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 4) for x, y in points[0])[None, None]
    config = GraphTrainConfig(rotate_deg=10, scale=(0.8, 1.2), shift=0.1, gamma_range=(1, 1), noise_std=0)
    warped, moved = augment_batch(image, points, config, torch.Generator().manual_seed(5))
    assert not torch.allclose(moved, points, atol=1.0)             # the landmarks did move
    for x, y in moved[0]:
        xi, yi = round(float(x)), round(float(y))
        window = warped[0, 0, yi - 3:yi + 4, xi - 3:xi + 4]
        peak = np.unravel_index(int(window.argmax()), window.shape)
        assert abs(peak[0] - 3) <= 1 and abs(peak[1] - 3) <= 1      # ... to where the image's blobs went


def test_a_few_training_steps_reduce_the_landmark_error():
    cases = ellipse_cases(4)
    model = small_model()
    before = evaluate_landmarks(model, cases, torch.device("cpu"))["error_px"]
    config = GraphTrainConfig(epochs=8, batch_size=2, lr=1e-3, augment=False, val_every=100)
    result = fit_graph(model, cases, [], config)
    after = evaluate_landmarks(model, cases, torch.device("cpu"))["error_px"]
    losses = [row["train_loss"] for row in result.history]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    assert after < 0.75 * before


def test_resume_continues_the_same_run(tmp_path):
    cases = ellipse_cases(4)
    config = GraphTrainConfig(epochs=3, batch_size=2, lr=1e-3, val_every=100, output=str(tmp_path / "run"))
    straight = small_model()
    fit_graph(straight, cases[:3], cases[3:], GraphTrainConfig(**{**config.__dict__, "output": str(tmp_path / "a")}))
    resumed = small_model()
    fit_graph(resumed, cases[:3], cases[3:], config, max_epochs=2)
    again = small_model()
    result = fit_graph(again, cases[:3], cases[3:], config, resume=True)
    assert result.epochs_run == 1 and len(result.history) == 3
    for name, value in straight.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], value, msg=name)
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"last.pt", "best.pt", "history.csv"}


def test_load_cases_from_files_converts_colour_and_skips_split_masks(tmp_path, caplog, monkeypatch):
    from PIL import Image

    card = create_model("hybridgnet", roi_size=(S, S), width=2).card
    shape = (100, 120)
    right, left = ellipse(36, 50, 14, 32, 200), ellipse(84, 50, 15, 34, 200)
    mask = landmarks_to_mask({"r": right, "l": left}, shape)
    rgb = np.dstack([mask * 100 + 50] * 3).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "good.png")
    Image.fromarray((mask > 0).astype(np.uint8) * 255).save(tmp_path / "good_mask.png")
    case = load_landmark_case(tmp_path / "good.png", tmp_path / "good_mask.png", card)
    assert case["image"].shape == (1, S, S) and case["landmarks"].shape == (94, 2)
    top_right = case["letterbox"].to_input(np.array([[36.0, 50 - 32]]))[0]
    assert np.linalg.norm(case["landmarks"][0].numpy() - top_right) < 1.5     # apex of the right lung
    split = (mask > 0).astype(np.uint8) * 255
    split[48:52] = 0
    Image.fromarray(split).save(tmp_path / "split_mask.png")
    monkeypatch.setattr(logging.getLogger("medseg"), "propagate", True)  # the CLI tests turn it off
    with caplog.at_level(logging.WARNING):
        assert load_landmark_case(tmp_path / "good.png", tmp_path / "split_mask.png", card) is None
    assert "skipped" in caplog.text and "4 separate" in caplog.text


@pytest.mark.shared
def test_real_chest_xray_gives_lung_landmarks(shared_data):
    folder = shared_data / "cxr_lung_covid_v7"
    card = create_model("hybridgnet", roi_size=(256, 256), width=2).card
    case = load_landmark_case(folder / "images" / "2168a917.jpg", folder / "masks" / "2168a917.png", card)
    points = case["landmarks"].numpy()
    assert points.shape == (94, 2) and points.min() > 0 and points.max() < 256
    assert points[:44, 0].mean() < 128 < points[44:, 0].mean()            # right lung on the image's left
