"""Image I/O: files <-> :class:`monai.data.MetaTensor` (or a MONAI-free :class:`~medseg.io.volume.Volume`) with RAS geometry. Nothing else touches formats.

Names are resolved on first use (as in :mod:`medseg`), so ``medseg.io.readers.read_array`` and the header
readers work without importing torch and MONAI (``medseg info`` stays fast).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from medseg._lazy import lazy_getattr

if TYPE_CHECKING:  # the same names, typed, for mypy and editors
    from medseg.io.dicom import list_dicom_series
    from medseg.io.dicom_objects import read_dicom_object, write_dicom_labels
    from medseg.io.formats import case_name, detect_format, split_ext
    from medseg.io.readers import read_array, read_image
    from medseg.io.volume import Volume, labels_like, read_volume
    from medseg.io.writers import write_image

_LAZY = {
    "case_name": "medseg.io.formats",
    "detect_format": "medseg.io.formats",
    "split_ext": "medseg.io.formats",
    "list_dicom_series": "medseg.io.dicom",
    "read_dicom_object": "medseg.io.dicom_objects",
    "write_dicom_labels": "medseg.io.dicom_objects",
    "read_array": "medseg.io.readers",
    "read_image": "medseg.io.readers",
    "write_image": "medseg.io.writers",
    "Volume": "medseg.io.volume",
    "labels_like": "medseg.io.volume",
    "read_volume": "medseg.io.volume",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["Volume", "case_name", "detect_format", "labels_like", "list_dicom_series", "read_array",
           "read_dicom_object", "read_image", "read_volume", "split_ext", "write_dicom_labels", "write_image"]
