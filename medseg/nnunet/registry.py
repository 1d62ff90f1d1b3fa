"""``medseg models import-folder``: register an nnU-Net v2 result folder under a name, with a card.

The card (JSON in ``<weights dir>/nnunet/<name>.json``) records what was read from ``dataset.json`` and
``plans.json`` (labels, channels, modality, spacing, patch, configuration, trainer) and the sha256 of every
fold file; the hashes are verified before each load, so a changed fold file is refused. The licence field is
left for the user: nnU-Net folders do not state one.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from medseg.core.atomic import atomic_write_text
from medseg.core.errors import MedsegError
from medseg.core.hashing import sha256_file
from medseg.core.paths import weights_import_dir  # not medseg.models: `models show` stays torch-free
from medseg.nnunet.folder import DEFAULT_CHECKPOINT, read_folder

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def registry_dir(weights_dir: str | Path | None = None) -> Path:
    return weights_import_dir(weights_dir) / "nnunet"


def describe(path: str | Path, checkpoint_name: str = DEFAULT_CHECKPOINT, hashes: bool = False) -> dict:
    """The card of a result folder (no weights loaded; ``hashes`` adds each fold file's sha256)."""
    from medseg.nnunet.checkpoint import load_fold
    from medseg.nnunet.folder import resolve_configuration
    from medseg.nnunet.labels import read_labels

    folder = read_folder(path, checkpoint_name)
    folds = folder.select(None)
    if not folder.configuration or not folder.trainer:  # folder not named Trainer__Plans__configuration
        first = load_fold(*next(iter(folds.items())))
        folder.configuration = folder.configuration or first.configuration or ""
        folder.trainer = folder.trainer or first.trainer
    config = resolve_configuration(folder.plans, folder.configuration, folder.path / "plans.json")
    labels = read_labels(folder.dataset)
    arch = config.get("architecture", {}).get("network_class_name", config.get("UNet_class_name", "?"))
    card = {
        "kind": "nnunetv2",
        "path": str(folder.path.resolve()),
        "dataset": folder.plans.get("dataset_name", ""),
        "trainer": folder.trainer,
        "plans": folder.plans_name,
        "configuration": folder.configuration,
        "network": str(arch).rsplit(".", 1)[-1],
        "channels": folder.channel_names,
        "modality": "CT" if any(n.upper() == "CT" for n in folder.channel_names) else ", ".join(folder.channel_names),
        "labels": {str(k): v for k, v in sorted(labels.names.items())},
        "regions": [list(r) for r in labels.regions] if labels.regions else None,
        "spacing_zyx": config.get("spacing"),
        "patch_size": config.get("patch_size"),
        "normalization": config.get("normalization_schemes"),
        "checkpoint_name": checkpoint_name,
        "folds": {k: {"file": str(v.relative_to(folder.path))} for k, v in folds.items()},
        "licence": None,
    }
    if hashes:
        for k, v in folds.items():
            card["folds"][k]["sha256"] = sha256_file(v)
    if config.get("previous_stage"):  # a cascade: its previous stage, where nnU-Net puts it, pinned as well
        stage = folder.path.parent / f"{folder.trainer}__{folder.plans_name}__{config['previous_stage']}"
        if not stage.is_dir():
            raise MedsegError(f"the {config['previous_stage']} stage this cascade needs is missing", path=stage,
                              hint=f"train {config['previous_stage']} with the same trainer and plans")
        previous = describe(stage, checkpoint_name, hashes)
        card["previous_stage"] = {"path": previous["path"], "configuration": previous["configuration"],
                                  "folds": previous["folds"]}
    return card


def import_folder(path: str | Path, name: str | None = None, checkpoint_name: str = DEFAULT_CHECKPOINT,
                  weights_dir: str | Path | None = None) -> tuple[str, Path, dict]:
    """Register ``path`` under ``name`` (default: the dataset name + configuration); returns (name, card file, card)."""
    card = describe(path, checkpoint_name, hashes=True)
    name = name or f"{card['dataset'] or Path(path).parent.name}_{card['configuration']}"
    if not NAME.match(name):
        raise MedsegError(f"invalid name {name!r}", hint="letters, digits, '_', '-', '.' (at most 64)")
    target = registry_dir(weights_dir) / f"{name}.json"
    card["name"] = name
    atomic_write_text(target, json.dumps(card, indent=1) + "\n")
    return name, target, card


def lookup(name: str, weights_dir: str | Path | None = None) -> dict | None:
    """The registered card of ``name``, or None when no folder was imported under it."""
    if not NAME.match(name):
        return None
    target = registry_dir(weights_dir) / f"{name}.json"
    if not target.is_file():
        return None
    try:
        return json.loads(target.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MedsegError(f"cannot read the imported card ({exc})", path=target) from exc
