"""Weights: sha256-checked loading, pinning unpublished hashes at import, safe formats."""
from __future__ import annotations

import pytest
import torch

from medseg.core.card import Pretrained
from medseg.core.errors import MedsegError
from medseg.core.hashing import sha256_file
from medseg.models import create_model, get_card, weights
from tests.models.official_checkpoints import official_stunet_state, save_nnunet_v1


def _tiny(**kw):
    return create_model("stunet_t", width=2, **kw)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_save_and_load_by_hash(tmp_path, suffix):
    model = _tiny()
    digest = weights.save_weights(model, tmp_path / f"w{suffix}")
    assert digest == sha256_file(tmp_path / f"w{suffix}")
    card = model.card.replace(pretrained=(Pretrained(tag="mine", file=f"w{suffix}", sha256=digest),))
    other = _tiny()
    weights.load_pretrained(other, card, "mine", weights_dir=tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_wrong_hash_is_refused(tmp_path):
    model = _tiny()
    weights.save_weights(model, tmp_path / "w.pt")
    card = model.card.replace(pretrained=(Pretrained(tag="mine", file="w.pt", sha256="0" * 64),))
    with pytest.raises(MedsegError, match="sha256 mismatch"):
        weights.load_pretrained(_tiny(), card, "mine", weights_dir=tmp_path)


def test_other_architecture_via_pretrained_path(tmp_path):
    weights.save_weights(create_model("segresnet_2d", init_filters=8), tmp_path / "seg.pt")
    with pytest.raises(MedsegError, match="does not fit"):
        create_model("stunet_t", pretrained=str(tmp_path / "seg.pt"))
    weights.save_weights(_tiny(), tmp_path / "t.pt")
    assert create_model("stunet_t", width=2, pretrained=str(tmp_path / "t.pt")).card.name == "stunet_t"


def test_import_pins_an_unpublished_hash_and_loads_official_files(tmp_path):
    state = official_stunet_state(c0=16, blocks=1)  # STU-Net S: import checks the file against that architecture
    src = save_nnunet_v1(state, tmp_path / "downloaded.model")
    folder = tmp_path / "weights"
    dest, digest = weights.import_weights("stunet_s.totalseg", src, weights_dir=folder)
    assert dest == folder / "small_ep4k.model" and dest.read_bytes() == src.read_bytes()
    assert (folder / "small_ep4k.model.sha256").read_text(encoding="utf-8").startswith(digest)
    model = create_model("stunet_s", pretrained="totalseg", weights_dir=folder)  # nnunet format
    assert torch.equal(model.seg_outputs[0].bias, state["seg_outputs.0.bias"])
    dest.write_bytes(dest.read_bytes()[:-10])  # corrupted later
    with pytest.raises(MedsegError, match="sha256 mismatch"):
        create_model("stunet_s.totalseg", weights_dir=folder)


def test_import_refuses_an_unpublished_file_of_another_architecture(tmp_path):
    src = save_nnunet_v1(official_stunet_state(c0=2, blocks=1), tmp_path / "downloaded.model")
    with pytest.raises(MedsegError, match="does not fit stunet_s.totalseg: .*shape mismatch"):
        weights.import_weights("stunet_s.totalseg", src, weights_dir=tmp_path / "weights")
    assert not (tmp_path / "weights").exists() or not any((tmp_path / "weights").iterdir())


def test_unimported_unpublished_weights_are_not_trusted(tmp_path):
    save_nnunet_v1(official_stunet_state(c0=2, blocks=1), tmp_path / "small_ep4k.model")
    with pytest.raises(MedsegError, match="medseg models import"):
        create_model("stunet_s.totalseg", weights_dir=tmp_path, width=2)


def test_import_checks_published_hash_and_rejects_web_pages(tmp_path, monkeypatch):
    page = tmp_path / "base_ep4k.model"
    page.write_text("<html><body>Sign in</body></html>")
    with pytest.raises(MedsegError, match="HTML page"):
        weights.import_weights("stunet_b", page, weights_dir=tmp_path / "w")
    good = tmp_path / "f.pt"
    weights.save_weights(_tiny(), good)
    entry = Pretrained(tag="pinned", file="f.pt", sha256="a" * 64)
    from medseg.models import _registry

    card = get_card("stunet_t").replace(pretrained=(entry,))
    monkeypatch.setitem(_registry._REGISTRY, "stunet_t", _registry._REGISTRY["stunet_t"].__class__(
        card=card, builder=_registry._REGISTRY["stunet_t"].builder, module="test"))
    with pytest.raises(MedsegError, match="not the published file"):
        weights.import_weights("stunet_t", good, weights_dir=tmp_path / "w")
    assert not (tmp_path / "w" / "f.pt").exists()
