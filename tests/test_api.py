import numpy as np
import pytest
import torch
from monai.data import MetaTensor

import medseg
from medseg.api import predict, predict_files
from medseg.core.errors import MedsegError
from medseg.io import write_image
from tests.conftest import SAMPLE, random_oblique_affine
from tests.inference._models import expected, noise_volume, threshold_model


def test_predict_on_a_tensor_returns_labels_with_its_geometry(rng):
    affine = random_oblique_affine(rng)
    volume = noise_volume((18, 20, 9), rng)
    labels = medseg.predict(MetaTensor(torch.from_numpy(volume)[None], affine=torch.as_tensor(affine)),
                            model=threshold_model(), device="cpu")
    assert isinstance(labels, MetaTensor) and labels.shape == (1, 18, 20, 9)
    np.testing.assert_allclose(labels.affine.numpy(), affine)
    np.testing.assert_array_equal(labels[0].numpy(), expected(volume))


def test_predict_on_a_path_with_a_zoo_architecture():
    model = medseg.create_model("stunet_t")  # random weights: geometry and dtype only
    prediction = predict(SAMPLE, model=model, device="cpu", return_prediction=True)
    assert prediction.labels.shape == (1, 35, 51, 35) and prediction.labels.dtype == torch.uint8
    assert prediction.label_names == ("background", "anterior", "posterior")


def test_predict_files_and_postprocess_override(tmp_path, rng):
    volume = np.zeros((20, 20, 20), np.float32)
    volume[2:10, 2:10, 2:10] = 1.0
    volume[15, 15, 15] = 1.0
    write_image(volume[None], tmp_path / "a.nii.gz", affine=np.eye(4))
    summary = predict_files([tmp_path / "a.nii.gz"], tmp_path / "seg.nii.gz", model=threshold_model(),
                            device="cpu", postprocess={"keep_largest": True})
    assert summary.exit_code == 0
    labels = medseg.read_image(tmp_path / "seg.nii.gz")[0].numpy()
    assert (labels == 1).sum() == 512


def test_unknown_model_is_a_medseg_error():
    with pytest.raises(MedsegError, match="unknown model"):
        predict(SAMPLE, model="no_such_model.tag")
