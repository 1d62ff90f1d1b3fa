"""INT8 (NNCF) behind the accuracy guard, its calibration cache key, and OpenVINO's throughput mode.

Most tests replace NNCF's ``quantize`` by a known network (the same one, or one with other weights), so the
cache, the guard and the fallback run for real in seconds without NNCF; one test runs NNCF itself when
it is installed (``pip install -e ".[int8]"``).
"""
import dataclasses
import json
import logging
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch

from medseg.backends import cache, calibration, get_predictor, int8
from medseg.backends.availability import import_backend_dependency
from medseg.backends.openvino_backend import OpenVINORunner, resolve_mode
from medseg.backends.predictor import CompiledPredictor
from medseg.backends.selection import resolve
from medseg.core.errors import MedsegError
from medseg.inference.provenance import run_record
from medseg.inference.runtime import GuardedRuntime
from medseg.models.heads import head_for
from tests.backends.conftest import ROI, needs, tiny_stunet

pytestmark = needs("openvino")
HAS_NNCF = import_backend_dependency("nncf") is not None


def _scans(folder, count=3, shape=(18, 17, 16)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        nib.save(nib.Nifti1Image(rng.normal(100, 20, shape).astype(np.float32), np.eye(4)),
                 folder / f"case_{i:03d}.nii.gz")
    return calibration.image_files(folder)


def _card(model):
    return dataclasses.replace(model.card, roi_size=ROI)


def _ov_model(torch_model):
    """An ``ov.Model`` of ``torch_model`` for the window, as the quantiser's stand-in output."""
    import openvino as ov

    from medseg.backends.export import export_onnx
    from medseg.backends.openvino_backend import reshape_dynamic_batch

    def build(model, windows):
        path = _ov_model.tmp / "other.onnx"
        export_onnx(torch_model, path, roi_size=ROI, in_channels=1)
        converted = ov.convert_model(str(path))
        reshape_dynamic_batch(converted, (1, *ROI))
        return converted

    return build


@pytest.fixture
def no_nncf_needed(monkeypatch, tmp_path):
    monkeypatch.setattr(int8, "nncf_version", lambda: "test")
    _ov_model.tmp = tmp_path


def test_calibration_key_follows_the_scans_and_builds_windows_of_the_window_size(tmp_path):
    model = tiny_stunet()
    files = _scans(tmp_path / "scans")
    a, again = calibration.from_files(files[:2], _card(model)), calibration.from_files(files[:2], _card(model))
    b = calibration.from_files(files[1:], _card(model))
    assert a.key == again.key and a.key != b.key
    windows = a.windows()
    assert windows and all(w.shape == (1, 1, *ROI) and w.dtype == np.float32 for w in windows)
    assert abs(float(np.mean(np.concatenate(windows)))) < 0.5   # z-scored as the card says
    files[0].write_bytes(files[2].read_bytes())                  # same name, other content
    assert calibration.from_files(files[:2], _card(model)).key != a.key


def test_int8_entry_is_keyed_by_calibration_set(no_nncf_needed, tmp_path, monkeypatch, cache_root):
    monkeypatch.setattr(int8, "quantize", lambda model, windows: model)   # a perfect "quantiser"
    model, files = tiny_stunet(), _scans(tmp_path / "scans", count=4)
    first, second = (calibration.from_files(f, _card(model)) for f in (files[:2], files[2:]))
    kwargs = {"backend": "openvino", "precision": "int8", "roi_size": ROI, "cache_dir": cache_root, "threads": 1}
    cache.STATS.clear()
    p1 = get_predictor(model, calibration=first, **kwargs)
    assert isinstance(p1, CompiledPredictor) and p1.precision == "int8" and p1.guard["min_dice"] == 1.0
    assert get_predictor(model, calibration=first, **kwargs).cache_path == p1.cache_path
    p2 = get_predictor(model, calibration=second, **kwargs)
    assert p2.cache_path != p1.cache_path and p2.calibration != p1.calibration
    assert json.loads((p2.cache_path / "manifest.json").read_text())["fields"]["calibration"] == second.key
    x = torch.randn(2, 1, *ROI, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(p1(x), model(x), atol=1e-3, rtol=1e-3)


def test_int8_that_fails_the_guard_is_refused_and_fp32_runs(no_nncf_needed, tmp_path, monkeypatch, caplog,
                                                            cache_root):
    torch.manual_seed(7)
    other = tiny_stunet().apply(lambda m: torch.nn.init.normal_(m.weight) if isinstance(m, torch.nn.Conv3d) else None)
    monkeypatch.setattr(int8, "quantize", _ov_model(other))             # labels unlike the model's
    model = tiny_stunet()
    scans = calibration.from_files(_scans(tmp_path / "scans", count=1), _card(model))
    kwargs = {"backend": "openvino", "precision": "int8", "roi_size": ROI, "cache_dir": cache_root,
              "threads": 1, "calibration": scans}
    with caplog.at_level(logging.WARNING):
        predictor = get_predictor(model, **kwargs)
    assert (predictor.backend, predictor.precision) == ("openvino", "fp32")
    assert "refused by the accuracy guard" in predictor.reason and "Dice" in caplog.text
    monkeypatch.setattr(int8, "quantize", lambda *a: pytest.fail("the refusal is cached: no new calibration"))
    assert get_predictor(model, **kwargs).precision == "fp32"


def test_int8_requests_that_cannot_work_say_why(tmp_path, monkeypatch):
    model = tiny_stunet()
    for backend in ("torch", "onnxruntime"):
        with pytest.raises(MedsegError, match="openvino"):
            resolve(backend, "int8", torch.device("cpu"))
    assert resolve("auto", "int8", torch.device("cpu")).backend == "openvino"
    with pytest.raises(MedsegError, match="CPU only"):
        resolve("auto", "int8", torch.device("cuda"))
    monkeypatch.setattr(int8, "nncf_version", lambda: "test")
    with pytest.raises(MedsegError, match="calibration"):
        get_predictor(model, backend="openvino", precision="int8", roi_size=ROI, cache_dir=tmp_path)
    with pytest.raises(MedsegError, match="no calibration scans"):
        calibration.image_files(tmp_path)
    monkeypatch.undo()
    monkeypatch.setattr("medseg.backends.int8.import_backend_dependency", lambda name: None)
    with pytest.raises(MedsegError, match=r"int8\]"):
        get_predictor(model, backend="openvino", precision="int8", roi_size=ROI, cache_dir=tmp_path)


def test_throughput_mode_matches_latency_and_single_windows_skip_it(cache_root):
    model = tiny_stunet()
    x = torch.randn(3, 1, *ROI, generator=torch.Generator().manual_seed(6))
    kwargs = {"backend": "openvino", "precision": "fp32", "roi_size": ROI, "cache_dir": cache_root, "threads": 2}
    latency = get_predictor(model, mode="latency", **kwargs)
    throughput = get_predictor(model, mode="throughput", **kwargs)
    assert (latency.mode, throughput.mode) == ("latency", "throughput")
    assert get_predictor(model, mode="auto", **kwargs).mode == "throughput"       # 2 threads: measured faster
    assert get_predictor(model, mode="auto", **{**kwargs, "threads": 1}).mode == "latency"
    assert resolve_mode("auto", 2, 64 ** 3) == "latency"                        # big windows: measured slower
    runner: OpenVINORunner = throughput.runner
    throughput(x[:1])
    assert runner._queue is None                                                # one window: latency path
    torch.testing.assert_close(throughput(x), latency(x), atol=1e-5, rtol=1e-5)
    assert runner._queue is not None and "throughput mode" in throughput.describe()
    with pytest.raises(MedsegError, match="mode"):
        get_predictor(model, mode="fastest", **kwargs)


def test_sidecar_records_int8_mode_and_calibration_until_the_guard_fails(no_nncf_needed, tmp_path, monkeypatch,
                                                                        cache_root):
    monkeypatch.setattr(int8, "quantize", lambda model, windows: model)
    model = tiny_stunet()
    scans = calibration.from_files(_scans(tmp_path / "scans", count=2), _card(model))   # = the keyed test's first
    compiled = get_predictor(model, backend="openvino", precision="int8", roi_size=ROI, cache_dir=cache_root,
                             threads=2, calibration=scans)
    guarded = GuardedRuntime(compiled, model, head_for(model.card))
    predictor = SimpleNamespace(cpu_network=guarded, device=torch.device("cpu"))
    record = run_record(predictor, {"device": "cpu", "tta": False})
    assert (record["backend"], record["precision"], record["threads"]) == ("openvino", "int8", 2)
    assert record["mode"] == "throughput" and scans.key[:12] in record["calibration"]
    guarded.trusted = False                                                     # the run-time guard said no
    record = run_record(predictor, {"device": "cpu", "tta": False})
    assert (record["backend"], record["precision"]) == ("torch", "fp32") and "calibration" not in record


@pytest.mark.skipif(not HAS_NNCF, reason='NNCF not installed (pip install -e ".[int8]")')
def test_nncf_quantises_and_the_guard_decides(tmp_path):
    model = tiny_stunet()
    scans = calibration.from_files(_scans(tmp_path / "scans", count=2), _card(model), windows_per_case=2)
    predictor = get_predictor(model, backend="openvino", precision="int8", roi_size=ROI, cache_dir=tmp_path / "c",
                              threads=1, calibration=scans, guard_dice=0.0)
    assert predictor.precision == "int8" and 0.0 < predictor.guard["min_dice"] <= 1.0
    out = predictor(torch.randn(2, 1, *ROI))
    assert out.shape == (2, model.card.out_channels, *ROI) and torch.isfinite(out).all()
    strict = get_predictor(model, backend="openvino", precision="int8", roi_size=ROI, cache_dir=tmp_path / "c",
                           threads=1, calibration=scans, guard_dice=1.01)     # no network can pass this
    assert strict.precision == "fp32" and "refused" in strict.reason


def test_default_calibration_is_the_training_split_never_validation(tmp_path):
    from medseg.inference.runtime import calibration_set

    data = tmp_path / "data"
    files = _scans(data / "imagesTr", count=5)
    (data / "labelsTr").mkdir()
    for f in files:
        (data / "labelsTr" / f.name).write_bytes(f.read_bytes())
    weights = tmp_path / "net.safetensors"
    recipe = {"recipe": {"data": {"dataset": str(data), "val_fraction": 0.2, "val_cases": [], "train_cases": []}}}
    (tmp_path / "net.safetensors.json").write_text(json.dumps(recipe))
    train = calibration.training_cases(str(weights))
    assert [f.name for f in train] == [f.name for f in files[:4]]   # every 5th case validates, as in training
    model = tiny_stunet()
    scans = calibration_set(_card(model), None, str(weights))
    assert scans.key == calibration.from_files(train, _card(model)).key and "training cases" in scans.source
    assert calibration_set(_card(model), data, None).key != scans.key      # --calibration FOLDER: all 5 scans
    with pytest.raises(MedsegError, match="--calibration"):
        calibration_set(_card(model), None, str(tmp_path / "elsewhere.safetensors"))
