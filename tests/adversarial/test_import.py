"""``medseg models import NAME FILE`` for entries without a published hash (issue 16, item 10): the file is
read with the safe loader and checked key by key, shape by shape against the entry's architecture before it
is copied and its hash pinned; anything else is refused (exit 2, what does not fit) and nothing is written."""
from __future__ import annotations

import hashlib
import pickle

import pytest
import torch
from safetensors.torch import save_file

from medseg.core.card import Pretrained
from medseg.models import get_entry, register_model
from tests.adversarial._io_probe import assert_refused, invoke, snapshot
from tests.inference._models import ThresholdNet, threshold_card

NAME, TAG, FILE = "medseg_test_unpinned", "community", "medseg_test_unpinned.safetensors"


@pytest.fixture(scope="module", autouse=True)
def unpinned_entry():
    try:
        get_entry(NAME)
    except Exception:  # noqa: BLE001 - not registered yet in this process
        card = threshold_card(NAME, pretrained=(Pretrained(tag=TAG, file=FILE, sha256=None, license="CC0"),))
        register_model(card)(lambda card, **kw: ThresholdNet(3))


def _state(**shapes) -> dict[str, torch.Tensor]:
    state = {k: v.clone() for k, v in ThresholdNet(3).state_dict().items()}
    state.update({k: torch.zeros(s) for k, s in shapes.items()})
    return state


def test_a_file_that_fits_is_copied_and_pinned(tmp_path):
    src = tmp_path / "download.safetensors"
    save_file(_state(), str(src))
    dest = tmp_path / "weights"
    result = invoke("models", "import", f"{NAME}.{TAG}", src, "--weights-dir", dest)
    assert result.exit_code == 0, result.output
    assert (dest / FILE).read_bytes() == src.read_bytes()
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert (dest / (FILE + ".sha256")).read_text().split()[0] == digest   # pinned: later loads are checked


@pytest.mark.parametrize("case, words", [
    ("wrong_shape", ("does not fit", "conv.weight")),
    ("missing_key", ("does not fit", "conv.bias")),
    ("extra_key", ("does not fit", "head.weight")),
    ("pickle", ()),
    ("not_a_checkpoint", ()),
])
def test_a_file_that_does_not_fit_is_refused_and_nothing_is_written(tmp_path, case, words):
    inputs = tmp_path / "in"
    inputs.mkdir()
    if case == "pickle":
        src = inputs / "model.pt"

        class Payload:
            def __reduce__(self):
                return (print, ("this must never run",))

        src.write_bytes(pickle.dumps({"state_dict": Payload()}))
    elif case == "not_a_checkpoint":
        src = inputs / "model.pt"
        src.write_text("<html>404 not found</html>")
    else:
        src = inputs / "model.safetensors"
        state = _state(**{"conv.weight": (4, 1, 1, 1, 1)}) if case == "wrong_shape" else _state()
        if case == "missing_key":
            del state["conv.bias"]
        if case == "extra_key":
            state["head.weight"] = torch.zeros(2)
        save_file(state, str(src))
    before = snapshot(inputs)
    dest = tmp_path / "weights"
    result = invoke("models", "import", f"{NAME}.{TAG}", src, "--weights-dir", dest)
    assert_refused(result, src, *words)
    assert "this must never run" not in result.output
    assert snapshot(inputs) == before
    assert not dest.exists() or not any(dest.iterdir())
