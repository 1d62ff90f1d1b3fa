"""The compiled-model cache: reuse, invalidation, corruption and concurrent builders."""
import json
import logging
import multiprocessing
import time
from pathlib import Path

import pytest
import torch

from medseg.backends import cache, get_predictor
from medseg.backends.cache import (
    STATS,
    cache_key,
    default_cache_dir,
    get_or_build,
    verify_entry,
)
from medseg.backends.export import architecture_sha256, weights_sha256
from medseg.core.hashing import sha256_file
from tests.backends.conftest import COMPILED, ROI, needs, tiny_stunet


def _predictor(model, backend, root):
    return get_predictor(model, backend=backend, precision="fp32", roi_size=ROI, batch_size=2, cache_dir=root,
                         threads=1)


def _entries(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}


@pytest.mark.parametrize("backend", COMPILED)
def test_second_call_reuses_the_entry_and_new_weights_make_a_new_one(backend, tmp_path, windows):
    model = tiny_stunet()
    first = _predictor(model, backend, tmp_path)
    builds, entries = STATS["builds"], _entries(tmp_path)
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert first.build_seconds is not None and len(entries) == 2   # the ONNX export + the compiled form

    again = _predictor(model, backend, tmp_path)
    assert STATS["builds"] == builds and again.build_seconds is None
    assert again.cache_path == first.cache_path
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file() and p in mtimes} == mtimes
    torch.testing.assert_close(again(windows), first(windows))

    with torch.no_grad():
        model.seg_outputs[-1].bias += 1.0          # fine-tuned weights: a new export
    changed = _predictor(model, backend, tmp_path)
    assert STATS["builds"] == builds + 2 and changed.cache_path != first.cache_path
    with torch.no_grad():
        torch.testing.assert_close(changed(windows), model(windows), atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize(("backend", "damage"), [
    pytest.param("openvino", "unloadable", marks=needs("openvino")),
    pytest.param("onnxruntime", "truncate", marks=needs("onnxruntime")),
    pytest.param("onnxruntime", "same size", marks=needs("onnxruntime")),
    pytest.param("onnxruntime", "manifest", marks=needs("onnxruntime"))])
def test_corrupt_entry_is_detected_and_rebuilt(backend, damage, tmp_path, windows, caplog):
    model = tiny_stunet()
    entry = _predictor(model, backend, tmp_path).cache_path
    victim = next(p for p in entry.iterdir() if p.name != cache.MANIFEST)
    if damage == "truncate":          # a crash or full disk while copying the cache
        victim.write_bytes(victim.read_bytes()[:100])
    elif damage == "same size":       # rewritten in place: the size matches, the modification time does not
        victim.write_bytes(bytes(reversed(victim.read_bytes())))
    elif damage == "manifest":
        (entry / cache.MANIFEST).write_text("{not json")
    else:                             # hashes match, but the runtime cannot read the file
        victim.write_bytes(b"garbage" * 10)
        manifest = json.loads((entry / cache.MANIFEST).read_text(encoding="utf-8"))
        manifest["files"][victim.name] = sha256_file(victim)
        (entry / cache.MANIFEST).write_text(json.dumps(manifest))
    corrupt = STATS["corrupt"]
    with caplog.at_level(logging.WARNING, logger="medseg"):
        rebuilt = _predictor(model, backend, tmp_path)
    assert STATS["corrupt"] == corrupt + 1
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    verify_entry(rebuilt.cache_path)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(windows), model(windows), atol=1e-3, rtol=1e-3)


def test_key_depends_on_every_field_and_env_sets_the_default_dir(monkeypatch, tmp_path):
    base = {"weights": "a", "roi": [16, 16, 16], "batch": 2, "backend": "openvino", "precision": "fp32",
            "versions": {"openvino": "1"}}
    keys = {cache_key(base)} | {cache_key({**base, k: "changed"}) for k in base}
    assert len(keys) == len(base) + 1
    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"


def test_weight_and_architecture_fingerprints():
    a, b = tiny_stunet(), tiny_stunet()
    assert weights_sha256(a) == weights_sha256(b)
    with torch.no_grad():
        b.conv_blocks_context[0][0].conv1.weight[0, 0, 0, 0, 0] += 1e-3
    assert weights_sha256(a) != weights_sha256(b)
    from medseg.models.stunet import STUNet

    same_weights = [STUNet(1, 3, dims=(4, 8), strides=[s]) for s in ((2, 2, 2), (1, 2, 2))]
    same_weights[1].load_state_dict(same_weights[0].state_dict())
    assert weights_sha256(same_weights[0]) == weights_sha256(same_weights[1])
    assert architecture_sha256(same_weights[0]) != architecture_sha256(same_weights[1])


def _slow_build(entry: Path, log: str) -> None:
    time.sleep(0.5)
    (entry / "payload.txt").write_text("ok")
    with open(log, "a") as handle:
        handle.write("built\n")


def _build_in_process(root: str, log: str) -> str:
    result = get_or_build(root, {"k": 1}, lambda e: _slow_build(e, log), lambda e: (e / "payload.txt").read_text(encoding="utf-8"))
    return f"{result.value}:{result.path}"


def test_concurrent_builders_build_once_and_share_the_entry(tmp_path):
    log = tmp_path / "builds.log"
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.starmap(_build_in_process, [(str(tmp_path / "c"), str(log))] * 2)
    assert log.read_text(encoding="utf-8").count("built") == 1
    assert len(set(results)) == 1 and results[0].startswith("ok:")
    manifest = json.loads((Path(results[0].split(":", 1)[1]) / cache.MANIFEST).read_text(encoding="utf-8"))
    assert set(manifest["files"]) == {"payload.txt"}


def test_failed_build_leaves_no_entry(tmp_path):
    def broken(entry: Path) -> None:
        (entry / "half.bin").write_bytes(b"x")
        raise RuntimeError("compiler crashed")

    with pytest.raises(RuntimeError, match="compiler crashed"):
        get_or_build(tmp_path, {"k": 2}, broken, lambda e: e)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]
    assert get_or_build(tmp_path, {"k": 2}, lambda e: (e / "f").write_text("1"), lambda e: e).built
