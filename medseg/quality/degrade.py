"""Deterministic image degradations for fitting and testing quality estimates (the shipped model is good
on clean scans, so few structures are bad; these give a meaningful bad set): noise, bias field, thick
slices, blur, contrast. Each takes a 3D float array and a seed and returns an array of the same shape."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

Degradation = Callable[[np.ndarray, int], np.ndarray]


def noise(level: float) -> Degradation:
    """Gaussian noise with SD ``level`` x the image's SD."""
    def apply(image: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return image + rng.normal(0.0, level * float(image.std()), image.shape)
    return apply


def bias(strength: float) -> Degradation:
    """A smooth multiplicative field ``exp(strength x f)``, f a random linear + quadratic ramp in [-1, 1]."""
    def apply(image: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in image.shape], indexing="ij")
        a, b = rng.normal(size=3), rng.normal(size=3)
        field = sum(a[i] * g + b[i] * (g * g - 1 / 3) for i, g in enumerate(grids))
        field = field / (np.abs(field).max() or 1.0)
        return image * np.exp(strength * field)
    return apply


def thick_slices(factor: int, axis: int) -> Degradation:
    """Average ``factor`` slices along ``axis`` and repeat them (a thick-slice acquisition)."""
    def apply(image: np.ndarray, seed: int) -> np.ndarray:
        n = image.shape[axis]
        pad = (-n) % factor
        widths = [(0, 0)] * image.ndim
        widths[axis] = (0, pad)
        padded = np.pad(image, widths, mode="edge")
        shape = list(padded.shape)
        shape[axis:axis + 1] = [shape[axis] // factor, factor]
        coarse = padded.reshape(shape).mean(axis=axis + 1)
        return np.take(np.repeat(coarse, factor, axis=axis), np.arange(n), axis=axis)
    return apply


def blur(sigma: float) -> Degradation:
    def apply(image: np.ndarray, seed: int) -> np.ndarray:
        return ndimage.gaussian_filter(image, sigma)
    return apply


def gamma(value: float) -> Degradation:
    """Contrast change: ``max x (image / max) ** value`` (values below zero clipped)."""
    def apply(image: np.ndarray, seed: int) -> np.ndarray:
        top = float(image.max()) or 1.0
        return top * np.clip(image / top, 0.0, None) ** value
    return apply


def chain(*steps: Degradation) -> Degradation:
    def apply(image: np.ndarray, seed: int) -> np.ndarray:
        for i, step in enumerate(steps):
            image = step(image, seed + 1000 * i)
        return image
    return apply


#: the set used by ``python -m medseg.quality.fit`` (name -> degradation)
DEGRADATIONS: dict[str, Degradation | None] = {
    "clean": None,
    "noise_0.15": noise(0.15),
    "noise_0.4": noise(0.4),
    "bias_0.8": bias(0.8),
    "thick_3_z": thick_slices(3, 2),
    "thick_5_x": thick_slices(5, 0),
    "blur_1.5": blur(1.5),
    "gamma_2.5": gamma(2.5),
    "noise_0.3+thick_4_y": chain(noise(0.3), thick_slices(4, 1)),
}


#: more conditions for the fitting cases only (more bad segmentations to fit on; the held-out cases keep
#: :data:`DEGRADATIONS`, so their figures compare with earlier fits)
EXTRA_FIT_DEGRADATIONS: dict[str, Degradation | None] = {
    "bias_0.5": bias(0.5),
    "bias_1.1": bias(1.1),
    "blur_1.0": blur(1.0),
    "blur_2.0": blur(2.0),
    "thick_4_y": thick_slices(4, 1),
    "gamma_0.5": gamma(0.5),
    "bias_0.6+blur_1.0": chain(bias(0.6), blur(1.0)),
}
