import json

from medseg.inference.model_loading import ModelInfo
from medseg.inference.provenance import (
    build_sidecar,
    input_digest,
    is_complete,
    read_sidecar,
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
