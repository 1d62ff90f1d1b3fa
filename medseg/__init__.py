"""medseg: 3D medical image segmentation toolkit.

Subpackages, imported one way (lower never imports higher):

- ``medseg.core``       errors, logging, hashing, atomic writes, model cards (imports nothing from medseg)
- ``medseg.io``         files <-> :class:`monai.data.MetaTensor` with geometry (NIfTI, NRRD, MHA, DICOM, PNG)
- ``medseg.transforms`` MONAI dict transforms built from a model card
- ``medseg.models``     the model zoo: ``create_model``, ``list_models``, ``get_card``
- ``medseg.inference``  sliding-window engine, stitching, restoring the scan's geometry
- ``medseg.metrics``    Dice and surface distances
- ``medseg.reports``    CSV / JSON / HTML evaluation reports
- ``medseg.training``   training and fine-tuning loops
- ``medseg.cli``        the ``medseg`` command (the only place that imports typer)
- ``medseg.viz``        figures for notebooks (matplotlib); not imported here: ``from medseg import viz``

Heavy modules are imported lazily so ``import medseg`` stays fast.
"""
from __future__ import annotations

from medseg._lazy import lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "predict": "medseg.api",
    "evaluate": "medseg.reports.evaluation",
    "read_image": "medseg.io",
    "write_image": "medseg.io",
    "create_model": "medseg.models",
    "list_models": "medseg.models",
    "get_card": "medseg.models",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["__version__", *_LAZY]
