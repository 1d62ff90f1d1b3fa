"""Header-only reads, and the checks that run on a header before any voxel data is read.

A header can claim any shape: an 80-byte NIfTI may claim 1200^3 float32 voxels (7 GB), a small gzip
stream may inflate to gigabytes. :func:`check_claim` compares the claim with the file (its size, or for
compressed files the most deflate can inflate and, for big claims, a streamed count that never holds more
than one chunk) and with the memory available, and refuses with one line naming the file and the claimed
shape. Complex-valued images are refused here too (dropping the imaginary part would be silently wrong).
"""
from __future__ import annotations

import gzip
import math
import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from medseg.core.errors import MedsegError
from medseg.core.memory import available_memory, format_bytes
from medseg.io.formats import DETACHED_HEADER, detect_format, split_ext
from medseg.io.geometry import spacing_from_affine

MAX_DEFLATE_RATIO = 1100      # deflate cannot inflate more than ~1032:1; a claim beyond that is impossible
STREAM_CHECK_BYTES = 64 << 20  # .nii.gz claims above this are counted by streaming before the real read
READ_COPIES = 2               # a read holds the decoded array and one converted copy at its peak
_CHUNK = 8 << 20


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, before any voxel data is read.

    ``shape`` is as stored (spatial axes, then frames for 4D files); ``components`` counts vector/RGB
    components per voxel; ``memory_itemsize`` is the bytes per value once decoded (scaled NIfTI: 8).
    """

    path: Path
    format: str
    shape: tuple[int, ...]
    dtype: str
    itemsize: int
    components: int
    affine: np.ndarray
    memory_itemsize: int
    complex: bool = False
    colour: bool = False
    data_offset: int = 0

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.shape[:3]

    @property
    def spacing(self) -> tuple[float, ...]:
        return spacing_from_affine(self.affine, min(len(self.shape), 3))

    @property
    def voxels(self) -> int:
        return math.prod(self.shape) * self.components

    @property
    def data_bytes(self) -> int:
        """Bytes of voxel data the header claims the file holds (uncompressed)."""
        return self.voxels * self.itemsize

    def describe(self) -> str:
        """``shape 1200x1200x1200 float32 (6.4 GB)``, for messages."""
        parts = "x".join(str(s) for s in self.shape)
        extra = f"x{self.components}" if self.components > 1 and not self.colour else ""
        return f"shape {parts}{extra} {self.dtype} ({format_bytes(self.data_bytes)})"


def read_header(path: str | PathLike) -> ImageHeader | None:
    """The header of a NIfTI or ITK file (no voxel data read); None for DICOM and 2D images."""
    p = Path(path)
    fmt = detect_format(p)
    if fmt == "nifti":
        return _nifti_header(p)
    if fmt == "itk" and split_ext(p)[1] != ".dcm":
        return _itk_header(p)
    return None


def check_claim(header: ImageHeader) -> None:
    """Refuse complex images and claims the file cannot hold or memory cannot take (see module docstring)."""
    p = header.path
    if header.complex:
        raise MedsegError(f"is complex-valued ({header.dtype}); medseg segments real-valued images and will "
                          "not drop the imaginary part", path=p,
                          hint="save the magnitude (numpy.abs) or the real part as a real-valued image first")
    if any(s <= 0 for s in header.shape):
        raise MedsegError(f"header claims {header.describe()}, with an empty axis", path=p,
                          hint="the header is corrupt: re-export the image")
    need = header.voxels * max(header.itemsize, header.memory_itemsize) * READ_COPIES
    free = available_memory()
    if need > free:
        raise MedsegError(f"header claims {header.describe()}; reading it needs about {format_bytes(need)}, "
                          f"more than the {format_bytes(free)} of memory available", path=p,
                          hint="if the header is right, crop or downsample the image or use a machine with "
                               "more memory; otherwise the file is corrupt or hostile")
    ext = split_ext(p)[1]
    if ext in DETACHED_HEADER:
        return  # the voxels live in another file, named inside the header
    size = p.stat().st_size
    compressed = ext.endswith(".gz") or header.format == "itk"  # ITK files may be zlib-compressed
    if not compressed:
        if size < header.data_offset + header.data_bytes:
            raise _short(header, size)
        return
    if header.data_bytes > MAX_DEFLATE_RATIO * size + (1 << 20):
        raise MedsegError(f"header claims {header.describe()}, more than a {format_bytes(size)} file can hold "
                          f"even compressed", path=p, hint="the header is corrupt or hostile: re-export the image")
    if ext == ".nii.gz" and header.data_bytes > STREAM_CHECK_BYTES:
        _count_gzip(header)


def _short(header: ImageHeader, have: int) -> MedsegError:
    return MedsegError(f"header claims {header.describe()} of voxel data, but the file holds only "
                       f"{format_bytes(max(0, have - header.data_offset))} after its header", path=header.path,
                       hint="the file is truncated or its header is corrupt: re-export or re-download it")


def _count_gzip(header: ImageHeader) -> None:
    """Inflate chunk by chunk, keeping nothing, until the claimed size is reached (or the stream ends)."""
    want = header.data_offset + header.data_bytes
    got = 0
    with gzip.open(header.path, "rb") as stream:
        while got < want:
            chunk = stream.read(min(_CHUNK, want - got))
            if not chunk:
                raise _short(header, got)
            got += len(chunk)


def open_nifti(p: Path) -> Any:
    """``nib.load`` (header read, voxels left on disk) with one clear line when the file is not NIfTI.
    Returns a Nifti1/2Image (nibabel types it as FileBasedImage)."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    try:
        return nib.load(str(p), mmap=False)
    except (ImageFileError, HeaderDataError) as exc:
        raise MedsegError(
            "is not a NIfTI file (its header is not a NIfTI header)",
            path=p,
            hint="check that it really is NIfTI, or give it the extension of its true format",
        ) from exc


def _nifti_header(p: Path) -> ImageHeader:
    img = open_nifti(p)
    hdr = img.header
    dtype = hdr.get_data_dtype()
    shape = tuple(int(s) for s in hdr.get_data_shape())
    colour = dtype.names is not None
    slope, inter = hdr.get_slope_inter()
    scaled = (slope is not None and slope != 1) or (inter is not None and inter != 0)
    itemsize = int(dtype.itemsize)
    return ImageHeader(
        path=p, format="nifti", shape=shape, dtype=_dtype_name(dtype), itemsize=itemsize,
        components=1, affine=np.asarray(img.affine, dtype=np.float64),
        memory_itemsize=8 if scaled else itemsize, complex=dtype.kind == "c", colour=colour,
        data_offset=int(hdr.get_data_offset()),
    )


def _dtype_name(dtype: np.dtype) -> str:
    if dtype.names:
        return {3: "RGB24", 4: "RGBA32"}.get(len(dtype.names), "structured")
    return str(dtype.newbyteorder("="))


def _itk_header(p: Path) -> ImageHeader:
    import SimpleITK as sitk

    from medseg.io.geometry import affine_from_itk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    reader.ReadImageInformation()
    size = tuple(int(s) for s in reader.GetSize())
    name = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    bits = re.search(r"(\d+)-bit", name)
    complex_ = "complex" in name
    itemsize = (int(bits.group(1)) // 8 if bits else 1) * (2 if complex_ else 1)
    dim = len(size)
    spatial = min(dim, 3)
    direction = np.asarray(reader.GetDirection()).reshape(dim, dim)[:spatial, :spatial].ravel()
    affine = affine_from_itk(reader.GetOrigin()[:spatial], reader.GetSpacing()[:spatial], direction)
    dtype = ("complex" + str(itemsize * 8)) if complex_ else name.replace("vector of ", "")
    components = 1 if complex_ else int(reader.GetNumberOfComponents())  # ITK counts re/im as 2 components
    return ImageHeader(path=p, format="itk", shape=size, dtype=dtype, itemsize=itemsize,
                       components=components, affine=affine,
                       memory_itemsize=max(itemsize, 4), complex=complex_)
