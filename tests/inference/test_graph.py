"""`medseg predict --model hybridgnet` writes a mask in the image's geometry and a landmark JSON."""
import json

import numpy as np
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from medseg.io import read_image, write_image
from medseg.models import create_model
from medseg.models.weights import save_weights


def test_graph_model_predicts_mask_and_landmarks(tmp_path):
    model = create_model("hybridgnet")
    checkpoint = tmp_path / "hybridgnet.safetensors"
    save_weights(model, checkpoint)
    rng = np.random.default_rng(0)
    image = (rng.random((1, 300, 280)) * 255).astype(np.uint8)   # (C, x, y): 280 rows x 300 columns
    write_image(image, tmp_path / "xray.png")
    args = ["predict", str(tmp_path / "xray.png"), "-o", str(tmp_path / "out" / "xray.png"), "--model", "hybridgnet",
            "--checkpoint", str(checkpoint)]
    result = CliRunner().invoke(cli_main.app, args)
    assert result.exit_code == 0, result.output
    mask = read_image(tmp_path / "out" / "xray.png")
    assert mask.shape == (1, 300, 280)
    assert (mask.affine == read_image(tmp_path / 'xray.png').affine).all()
    assert set(np.unique(mask.numpy())) <= {0, 1, 2}
    landmarks = json.loads((tmp_path / "out" / "xray.landmarks.json").read_text(encoding="utf-8"))
    text = json.dumps(landmarks)
    assert "right_lung" in text and "left_lung" in text
