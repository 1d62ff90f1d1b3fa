"""Every test here runs with one torch thread (tiny networks; see ``one_torch_thread`` in tests/conftest.py)."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    yield


@pytest.fixture(autouse=True)
def torch_windows(request, monkeypatch):
    """Stand-in parts run their windows in PyTorch (no OpenVINO compile per tiny network in the default suite);
    tests that ask for ``keep_runtime_policy`` keep medseg's runtime policy."""
    if "keep_runtime_policy" not in request.fixturenames:
        from medseg.totalseg import pipeline

        attach = pipeline.attach_runtime

        def torch_unless_asked(model, runtime):
            if runtime.backend == "auto" and runtime.precision == "auto":
                return lambda: "torch fp32 (test stand-in: no compiled runtime)"
            return attach(model, runtime)

        monkeypatch.setattr(pipeline, "attach_runtime", torch_unless_asked)
    yield


@pytest.fixture
def keep_runtime_policy():
    """Ask for this to run the default path's runtime policy as shipped (see ``torch_windows``)."""
    yield
