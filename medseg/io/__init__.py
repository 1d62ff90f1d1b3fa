"""Image I/O: files <-> :class:`monai.data.MetaTensor` with RAS geometry. Nothing else touches formats."""
from medseg.io.dicom import list_dicom_series
from medseg.io.dicom_objects import read_dicom_object, write_dicom_labels
from medseg.io.formats import case_name, detect_format, split_ext
from medseg.io.readers import read_image
from medseg.io.writers import write_image

__all__ = ["case_name", "detect_format", "list_dicom_series", "read_dicom_object", "read_image", "split_ext",
           "write_dicom_labels", "write_image"]
