"""Each installed runtime reproduces PyTorch fp32 on small networks with random weights."""
import logging

import pytest
import torch
from monai.inferers import sliding_window_inference

from medseg.backends import compare_label_maps, get_predictor
from medseg.backends.predictor import CompiledPredictor, TorchPredictor
from tests.backends.conftest import COMPILED, ROI, needs, tiny_monai_unet, tiny_stunet


def _reference(model, x):
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("make_model", [tiny_stunet, tiny_monai_unet], ids=["stunet_t", "monai_unet"])
def test_fp32_logits_match_torch(backend, make_model, cache_root):
    model = make_model()
    channels = 2 if make_model is tiny_monai_unet else 1
    x = torch.randn(3, channels, *ROI, generator=torch.Generator().manual_seed(3))
    ref = _reference(model, x)
    predictor = get_predictor(model, backend=backend, precision="fp32", roi_size=ROI, batch_size=2,
                              cache_dir=cache_root, threads=1)
    assert isinstance(predictor, CompiledPredictor) and predictor.backend == backend
    for batch in (x, x[:1]):   # more and fewer windows than the compiled batch
        out = predictor(batch)
        assert out.dtype == torch.float32 and out.shape == ref[: len(batch)].shape
        torch.testing.assert_close(out, ref[: len(batch)], atol=1e-3 * ref.abs().max().item(), rtol=1e-3)


@pytest.mark.parametrize("backend", ["torch", pytest.param("openvino", marks=needs("openvino"))])
def test_bf16_keeps_almost_all_labels(backend, stunet, windows, cache_root):
    ref = _reference(stunet, windows).argmax(1)
    predictor = get_predictor(stunet, backend=backend, precision="bf16", roi_size=ROI, batch_size=2,
                              cache_dir=cache_root, threads=1)
    out = predictor(windows)
    assert out.dtype == torch.float32
    agreement = compare_label_maps(out.argmax(1), ref)
    assert agreement.changed_fraction < 0.03   # random weights have many near-ties; trained ones far fewer


@pytest.mark.parametrize("backend", ["auto", *COMPILED])
def test_works_as_monai_sliding_window_predictor(backend, stunet, cache_root):
    image = torch.randn(1, 1, 30, 21, 17, generator=torch.Generator().manual_seed(4))
    kwargs = {"roi_size": ROI, "sw_batch_size": 2, "overlap": 0.5, "mode": "gaussian"}
    with torch.no_grad():
        ref = sliding_window_inference(image, predictor=stunet.eval(), **kwargs)
    predictor = get_predictor(stunet, backend=backend, precision="fp32", roi_size=ROI, batch_size=2,
                              cache_dir=cache_root, threads=1)
    out = sliding_window_inference(image, predictor=predictor, **kwargs)
    torch.testing.assert_close(torch.as_tensor(out), torch.as_tensor(ref), atol=1e-3, rtol=1e-3)


def test_training_mode_model_gives_full_resolution_logits_only(stunet, windows):
    stunet.train()   # deep supervision returns a tuple in training mode
    predictor = get_predictor(stunet, backend="torch", roi_size=ROI)
    out = predictor(windows)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 3, *ROI)


@pytest.mark.parametrize("backend", COMPILED)
def test_other_window_shape_runs_in_torch(backend, stunet, cache_root, caplog):
    predictor = get_predictor(stunet, backend=backend, precision="fp32", roi_size=ROI, batch_size=2,
                              cache_dir=cache_root, threads=1)
    x = torch.randn(1, 1, 8, 16, 24)
    with caplog.at_level(logging.WARNING, logger="medseg"):
        out = predictor(x)
    torch.testing.assert_close(out, _reference(stunet, x))
    assert any("not the compiled window" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("backend", COMPILED)
def test_unexportable_model_falls_back_to_torch_and_says_why(backend, stunet, windows, tmp_path, monkeypatch,
                                                             caplog):
    def refuse(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::made_up' to ONNX opset 17 is not supported")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    with caplog.at_level(logging.WARNING, logger="medseg"):
        predictor = get_predictor(stunet, backend=backend, roi_size=ROI, cache_dir=tmp_path)
    assert isinstance(predictor, TorchPredictor)
    assert "aten::made_up" in predictor.reason
    assert any("aten::made_up" in r.getMessage() for r in caplog.records)
    torch.testing.assert_close(predictor(windows), _reference(stunet, windows))
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]   # no half-built cache entry left behind


def test_auto_without_optional_runtimes_runs_torch(stunet, windows, monkeypatch, tmp_path):
    import sys

    for name in ("openvino", "onnxruntime"):
        monkeypatch.setitem(sys.modules, name, None)
    predictor = get_predictor(stunet, roi_size=ROI, cache_dir=tmp_path, device="cpu")
    assert isinstance(predictor, TorchPredictor) and "medseg[cpu]" in predictor.reason
    torch.testing.assert_close(predictor(windows), _reference(stunet, windows))


@needs("openvino")
def test_large_windows_run_one_per_call_with_the_batch_logits(cache_root):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(1, 3, 3, padding=1)).eval()   # 64^3: above 2**17 voxels
    predictor = get_predictor(model, backend="openvino", precision="fp32", roi_size=(64, 64, 64), cache_dir=cache_root,
                              mode="latency")
    windows = torch.randn(3, 1, 64, 64, 64)
    assert predictor.runner.one_by_one
    with torch.no_grad():
        torch.testing.assert_close(predictor(windows), model(windows), atol=1e-4, rtol=1e-4)
