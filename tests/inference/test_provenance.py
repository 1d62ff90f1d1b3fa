import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from medseg.backends.availability import is_available
from medseg.inference.model_loading import ModelInfo
from medseg.inference.provenance import (
    build_sidecar,
    input_digest,
    is_complete,
    read_sidecar,
    run_record,
    write_sidecar,
)

MODEL = ModelInfo("net", "v1", "a" * 64, "net.safetensors")
PARAMS = {"output_type": "multilabel", "stats": False}


def _record(tmp_path, **changes):
    (tmp_path / "case.nii.gz").write_bytes(b"12345")
    record = build_sidecar(
        input_path="in.nii.gz", input_sha256="b" * 64, input_shape=(2, 3, 4), input_affine=[[1, 0, 0, 0]] * 4,
        model=MODEL, card_dict={"name": "net"}, label_names=("background", "x"), parameters=PARAMS,
        settings={"device": "cpu (2 threads)"}, outputs={"labels": {"path": "case.nii.gz", "bytes": 5}},
        started="2026-01-01T00:00:00+00:00", seconds=1.5, timings={"inference_s": 1.0}, warnings=[],
    )
    record.update(changes)
    write_sidecar(tmp_path / "case.json", record)
    return record


def test_sidecar_holds_the_provenance(tmp_path):
    _record(tmp_path)
    record = read_sidecar(tmp_path / "case.json")
    assert record["model"]["weights_sha256"] == "a" * 64 and record["labels"] == {"0": "background", "1": "x"}
    assert record["device"].startswith("cpu") and record["environment"]["torch"]
    assert record["input"]["sha256"] == "b" * 64 and record["medseg_version"]


def test_complete_only_with_same_model_parameters_and_files(tmp_path):
    _record(tmp_path)
    sidecar = tmp_path / "case.json"
    assert is_complete(sidecar, model=MODEL, parameters=PARAMS)
    assert not is_complete(sidecar, model=ModelInfo("net", "v2", "c" * 64), parameters=PARAMS)
    assert not is_complete(sidecar, model=MODEL, parameters={**PARAMS, "stats": True})
    (tmp_path / "case.nii.gz").write_bytes(b"123")  # truncated output
    assert not is_complete(sidecar, model=MODEL, parameters=PARAMS)
    sidecar.write_text("{not json")
    assert not is_complete(sidecar, model=MODEL, parameters=PARAMS)


def test_folder_digest_depends_on_every_file(tmp_path):
    (tmp_path / "1.dcm").write_bytes(b"a")
    (tmp_path / "2.dcm").write_bytes(b"b")
    first = input_digest(tmp_path)
    (tmp_path / "2.dcm").write_bytes(b"c")
    assert input_digest(tmp_path) != first
    assert len(json.dumps(first)) == 66


def _predict_one(tmp_path, predictor):
    from medseg.inference.batch import OutputOptions, run_batch
    from medseg.inference.cases import plan_cases
    from medseg.io import write_image

    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    write_image(rng.uniform(0, 2, (1, 12, 14, 9)).astype(np.float32), tmp_path / "in" / "case.nii.gz")
    run_batch(predictor, plan_cases([tmp_path / "in"], tmp_path / "out"), OutputOptions())
    return read_sidecar(tmp_path / "out" / "case.json")["run"]


def test_sidecar_says_how_the_output_was_made_torch_cpu(tmp_path):
    from medseg.inference.predictor import PredictOptions, Predictor
    from tests.inference._models import threshold_model

    run = _predict_one(tmp_path, Predictor(threshold_model(), options=PredictOptions(threads=1, device="cpu")))
    assert (run["backend"], run["precision"], run["threads"]) == ("torch", "fp32", 1)
    assert run["tta"] == {"mirroring": True, "mirror_axes": [0, 1, 2], "passes": 8}
    assert run["device"].startswith("cpu") and run["windows_on"] == "cpu"


@pytest.mark.skipif(not is_available("openvino"), reason="openvino (medseg[cpu]) not installed")
def test_sidecar_names_the_compiled_cpu_runtime_and_its_threads(tmp_path, monkeypatch):
    from medseg.api import build_predictor
    from tests.inference._models import threshold_model

    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(tmp_path / "cache"))
    predictor = build_predictor(threshold_model(), device="cpu", backend="openvino", precision="fp32", tta=False)
    run = _predict_one(tmp_path, predictor)
    assert (run["backend"], run["precision"]) == ("openvino", "fp32")
    assert run["tta"] == {"mirroring": False, "mirror_axes": [], "passes": 1}
    assert run["threads"] == predictor.cpu_network.threads >= 1


def test_gpu_windows_and_a_fallback_to_the_cpu_are_told_apart():
    class Runtime:
        backend, precision, reason, threads = "openvino", "bf16", "requested openvino bf16", 2

    gpu = SimpleNamespace(device=torch.device("cuda"), cpu_network=Runtime())
    settings = {"device": "cuda:0 (H100)", "tta": True, "mirror_axes": [0, 1], "amp": True}
    run = run_record(gpu, {**settings, "placement": "compute on cuda:0, stitch on cpu"})
    assert (run["backend"], run["precision"], run["threads"], run["windows_on"]) == (
        "torch", "fp16 autocast", None, "cuda:0")
    assert run["tta"]["passes"] == 4
    fell_back = run_record(gpu, {**settings, "placement": "compute on cpu, stitch on cpu"})  # out of GPU memory
    assert (fell_back["backend"], fell_back["precision"], fell_back["threads"]) == ("openvino", "bf16", 2)


@pytest.mark.skipif(not is_available("openvino"), reason="openvino (medseg[cpu]) not installed")
def test_sidecar_of_the_default_backend_says_why_and_with_how_many_threads(tmp_path, monkeypatch):
    from medseg.api import build_predictor
    from tests.inference._models import threshold_model

    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(tmp_path / "cache"))
    predictor = build_predictor(threshold_model(), device="cpu", tta=False)   # backend auto: guarded OpenVINO
    run = _predict_one(tmp_path, predictor)
    assert (run["backend"], run["precision"]) == ("openvino", "fp32")
    assert "auto" in run["backend_reason"] and "checked against PyTorch" in run["backend_reason"]
    assert run["threads"] == predictor.cpu_network.runtime.threads >= 1
    assert run["torch_threads"] == 1   # torch only blends and decodes beside the runtime


def test_a_failed_guard_is_recorded_as_pytorch():
    class Guarded:
        backend, precision, trusted, runtime = "openvino", "fp32", False, None

    run = run_record(SimpleNamespace(device=torch.device("cpu"), cpu_network=Guarded()),
                     {"device": "cpu (2 threads)", "tta": False})
    assert (run["backend"], run["precision"]) == ("torch", "fp32")
    assert "failed the accuracy guard" in run["backend_reason"] and "torch_threads" not in run
