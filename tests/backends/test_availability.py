"""Checking which runtimes exist must not import onnx (0.9 CPU-s per `medseg predict` start, issue 21)."""
import subprocess
import sys

import pytest

from medseg.backends.availability import is_available


@pytest.mark.skipif(not is_available("openvino"), reason="openvino (medseg[cpu]) not installed")
def test_availability_and_cache_key_versions_do_not_import_onnx():
    code = ("import sys; from medseg.backends.availability import is_available, library_versions; "
            "v = library_versions('openvino'); print(is_available('openvino'), 'onnx' in sys.modules, v['onnx'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    import onnx

    assert out == ["True", "False", onnx.__version__]  # same cache key as when onnx was imported for it


def test_unknown_backend_is_not_available():
    assert not is_available("no_such_runtime")
    assert is_available("torch")
