"""2D models train through the same loop on PNG images and masks (`medseg train` with a 2D zoo model)."""
import json

import numpy as np
import pytest

from medseg.api import build_predictor
from medseg.io import read_image, write_image
from medseg.training import fit, load_recipe


def test_2d_model_trains_on_png_pairs(tmp_path):
    root = tmp_path / "d2d"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    entries = []
    for i in range(6):
        c = rng.uniform(20, 44, 2)
        label = (((yy - c[0]) ** 2 + (xx - c[1]) ** 2) < 100).astype(np.uint8)
        image = (label * 120 + rng.normal(60, 20, label.shape)).clip(0, 255).astype(np.uint8)
        write_image(image[None], root / "imagesTr" / f"c{i}.png")
        write_image(label[None], root / "labelsTr" / f"c{i}.png")
        entries.append({"image": f"./imagesTr/c{i}.png", "label": f"./labelsTr/c{i}.png"})
    (root / "dataset.json").write_text(json.dumps({"modality": {"0": "XR"}, "training": entries,
                                                   "labels": {"0": "background", "1": "disc"}}), encoding="utf-8")
    recipe = load_recipe(None, [
        f"data.dataset='{root}'", "data.val_fraction=0.34", "model.name='nnunet_plain_2d'", "plan.roi_size=[64, 64]",
        "train.epochs=4", "train.iterations_per_epoch=4", "train.num_workers=0", "train.val_every=1",
        f"train.output='{tmp_path / 'run'}'", "train.threads=1", "train.augmentation='none'"])
    result = fit(recipe)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0]
    dice = [row["val_dice_disc"] for row in result.history]
    assert dice[-1] > 0.6 and max(dice) > dice[0], dice          # it learned the discs (0.87 when written)

    # validation and prediction run the same preprocessing and engine: best.pt predicted on the validation
    # images scores exactly the validation Dice recorded for its epoch
    predictor = build_predictor("nnunet_plain_2d", checkpoint=result.output / "best.pt", device="cpu", tta=False)
    scores = []
    for name in json.loads((result.output / "plan.json").read_text())["split"]["val"]:
        pred = predictor.predict(read_image(root / "imagesTr" / f"{name}.png")).labels[0].numpy() == 1
        truth = read_image(root / "labelsTr" / f"{name}.png")[0].numpy() == 1
        scores.append(2 * (pred & truth).sum() / max(pred.sum() + truth.sum(), 1))
    assert float(np.mean(scores)) == pytest.approx(result.best_dice, abs=1e-6)
