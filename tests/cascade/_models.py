"""Tiny fixed-weight stage models for cascade tests: they threshold intensity (and the prior)."""
import torch
from torch import nn

from medseg.core.card import Intensity, ModelCard

LABELS = ("background", "organ")


class Threshold(nn.Module):
    """Foreground logit = gain * (image - level) [+ gain * (prior - 0.5)]: a 'trained' detector of bright voxels."""

    def __init__(self, card: ModelCard, level: float = 0.5, use_prior: bool = False) -> None:
        super().__init__()
        self.card, self.level, self.use_prior = card, level, use_prior
        self.gain = nn.Parameter(torch.tensor(20.0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fg = self.gain * (x[:, :1] - self.level)
        if self.use_prior:
            fg = fg + self.gain * (x[:, 1:2] - 0.5)
        return torch.cat([-fg / 2, fg / 2], 1)


def stage_models(spacing1=(4.0, 4.0, 4.0), spacing2=None, labels2=LABELS, roi=(32, 32, 32)):
    card1 = ModelCard(name="thr_lowres", spatial_dims=3, in_channels=1, out_channels=2, labels=LABELS,
                      roi_size=(16, 16, 16), spacing=spacing1, intensity=Intensity(kind="none"))
    card2 = ModelCard(name="thr_fullres", spatial_dims=3, in_channels=2, out_channels=len(labels2), labels=labels2,
                      channel_names=("image", "prior_organ"), roi_size=roi, spacing=spacing2,
                      intensity=Intensity(kind="none"))
    return Threshold(card1), Threshold(card2, use_prior=True)


STAGE1_NAME, STAGE2_NAME = "medseg_test_cascade_s1", "medseg_test_cascade_s2"


def register_stage_models() -> tuple[str, str]:
    """Register the threshold stages as zoo models (once per process) so a recipe can name them."""
    from medseg.models import get_entry, register_model

    s1, s2 = stage_models(spacing1=(4.0, 4.0, 4.0), roi=(16, 16, 16))
    for name, model, prior in ((STAGE1_NAME, s1, False), (STAGE2_NAME, s2, True)):
        try:
            get_entry(name)
        except Exception:  # noqa: BLE001 - not registered yet
            register_model(model.card.replace(name=name))(lambda card, p=prior, **kw: Threshold(card, use_prior=p))
    return STAGE1_NAME, STAGE2_NAME


def save_stage_checkpoints(folder, level: float = 0.5):
    """``folder/stage1/best.pt`` and ``folder/stage2/best.pt`` in ``medseg train``'s checkpoint format."""
    from medseg.models import create_model

    paths = []
    for stage, name in (("stage1", STAGE1_NAME), ("stage2", STAGE2_NAME)):
        model = create_model(name)
        model.level = level
        path = folder / stage / "best.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "card": model.card.to_dict()}, path)
        paths.append(path)
    return paths
