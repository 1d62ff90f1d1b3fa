import torch

from medseg.training import fit
from medseg.training.prepare import prepare_data


def test_a_few_iterations_reduce_the_loss(tiny_recipe):
    tiny_recipe.train.epochs = 6
    tiny_recipe.train.augmentation = "none"
    result = fit(tiny_recipe)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0]
    assert (result.output / "last.pt").is_file() and (result.output / "best.pt").is_file()
    assert (result.output / "history.csv").read_text(encoding="utf-8").count("\n") == 7
    assert (result.output / "curves.png").stat().st_size > 1000
    assert "val_dice_a" in result.history[-1]


def test_resume_after_crash_matches_uninterrupted_run(tiny_recipe, tmp_path):
    data = prepare_data(tiny_recipe)
    tiny_recipe.train.output = str(tmp_path / "straight")
    straight = fit(tiny_recipe, data=data)
    tiny_recipe.train.output = str(tmp_path / "interrupted")
    fit(tiny_recipe, data=data, max_epochs=1)          # the "crash" after epoch 0
    resumed = fit(tiny_recipe, data=data, resume=True)
    assert resumed.epochs_run == tiny_recipe.train.epochs - 1
    a = torch.load(straight.output / "last.pt", weights_only=True)["model"]
    b = torch.load(resumed.output / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert [r["train_loss"] for r in straight.history] == [r["train_loss"] for r in resumed.history]


def test_non_finite_loss_stops_with_a_clear_error(tiny_recipe, monkeypatch):
    import pytest

    from medseg.core.errors import MedsegError
    from medseg.training import losses

    monkeypatch.setattr(losses.DiceCELoss, "forward", lambda self, logits, target: logits.sum() * float("nan"))
    with pytest.raises(MedsegError, match="non-finite loss at epoch 0"):
        fit(tiny_recipe)


def test_out_of_memory_suggests_a_smaller_patch_or_batch(tiny_recipe, monkeypatch):
    import pytest

    from medseg.core.errors import MedsegError
    from medseg.training import losses

    def explode(self, logits, target):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(losses.DiceCELoss, "forward", explode)
    with pytest.raises(MedsegError, match="out of memory at epoch 0.*batch_size"):
        fit(tiny_recipe)


def test_fit_from_python_refuses_to_train_over_a_run(tiny_recipe):
    import pytest

    from medseg.core.errors import MedsegError

    tiny_recipe.train.epochs = 1
    first = fit(tiny_recipe)
    before = (first.output / "last.pt").read_bytes()
    with pytest.raises(MedsegError, match="run folder has a checkpoint"):
        fit(tiny_recipe)
    assert (first.output / "last.pt").read_bytes() == before   # the old run is untouched
