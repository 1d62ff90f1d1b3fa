"""Fine-tuning: load pretrained weights into a model built for new labels/channels, saying what happened.

Every tensor of the target model is either *loaded* (same name and shape), *re-initialised* (the output
heads the model declares in ``head_prefixes``: a new label set), or *adapted* (the ``stem_keys`` input
layers, tiled across the new input channels as STU-Net's fine-tuning does). Any other missing or
mis-shaped tensor is an error naming it; a source that matches nothing is refused. Official STU-Net
``.model``/``.pth`` files go through :func:`medseg.models._stunet_import.load_official_stunet`.
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path

import torch
from torch import nn

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.models import adapt_state_dict
from medseg.models._adapt import LoadReport

logger = get_logger(__name__)


def transfer_weights(model: nn.Module, source: dict[str, torch.Tensor], *,
                     source_name: str | PathLike = "checkpoint") -> LoadReport:
    """Load ``source`` into ``model`` for fine-tuning: heads re-initialised, stem tiled to the new input
    channels, every other tensor loaded by name with its shape checked (see the module docstring)."""
    source = {k.removeprefix("module."): v for k, v in source.items()}
    matched = set(source) & set(model.state_dict())
    if not matched:
        raise MedsegError("no tensor of the checkpoint matches this model", path=source_name,
                          hint="it is for another architecture; pick the matching --model")
    return adapt_state_dict(source, model, reinit_heads=True, tile_input_channels=True, source=source_name)


def read_source_weights(source: str, weights_dir: str | PathLike | None = None) -> tuple[dict, str]:
    """The state dict of ``NAME[.TAG]`` (pretrained zoo weights), a medseg training checkpoint, or any
    weights file (official STU-Net ``.model``/``.pth``, MONAI bundle, safetensors)."""
    from medseg.models import create_model
    from medseg.models.weights import read_state_dict

    path = Path(source)
    if path.exists():
        return read_state_dict(path), str(path)
    if "." not in source:
        raise MedsegError(f"{source!r} is neither a file nor NAME.TAG", hint="e.g. --from stunet_t.hippocampus")
    model = create_model(source, weights_dir=weights_dir)
    return model.state_dict(), source


def prepare_finetune(recipe, *, weights_dir: str | PathLike | None = None):
    """Data, model and transfer report for ``recipe.finetune.source`` on ``recipe.data``."""
    from medseg.training.prepare import build_model_for, prepare_data

    if not recipe.finetune.source:
        raise MedsegError("nothing to fine-tune from", hint="give --from NAME.TAG or a checkpoint file")
    data = prepare_data(recipe)
    model = build_model_for(recipe, data)
    source = recipe.finetune.source
    if Path(source).suffix in (".model", ".pth") and Path(source).is_file():
        from medseg.models._stunet_import import load_official_stunet

        report = load_official_stunet(model, source, reinit_heads=True, tile_input_channels=True)
    else:
        state, name = read_source_weights(source, weights_dir)
        report = transfer_weights(model, state, source_name=name)
    return data, model, report


def finetune_recipe(recipe: str | PathLike | None, *, source: str, data: str | PathLike, model: str | None = None,
                    epochs: int | None = None, freeze_encoder_epochs: int | None = None,
                    output: str | PathLike | None = None, overrides: list[str] | None = None):
    """The resolved recipe of ``medseg finetune``. Precedence, lowest first: the command's defaults (run
    folder ``runs/finetune_<model>``), the recipe file, the command's flags (``--data``, ``--from``,
    ``--model``, ``--epochs``, ``--freeze-encoder-epochs``, ``--output``), then the user's ``--set`` values."""
    import tomllib

    from medseg.training.config import load_recipe

    arch = model or source.partition(".")[0]
    raw: dict = {}
    if recipe is not None and Path(recipe).is_file():
        try:
            raw = tomllib.loads(Path(recipe).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError:
            raw = {}   # load_recipe below reports it with the file's name
    user = list(overrides or [])
    defaults = []
    if "output" not in raw.get("train", {}) and output is None:
        defaults.append(f"train.output={str(Path('runs') / f'finetune_{arch}')!r}")
    flags = [f"data.dataset={str(data)!r}", f"finetune.source={source!r}", f"model.name={arch!r}"]
    if epochs is not None:
        flags.append(f"train.epochs={int(epochs)}")
    if freeze_encoder_epochs is not None:
        flags.append(f"finetune.freeze_encoder_epochs={int(freeze_encoder_epochs)}")
    if output is not None:
        flags.append(f"train.output={str(output)!r}")
    return load_recipe(recipe, [*defaults, *flags, *user])
