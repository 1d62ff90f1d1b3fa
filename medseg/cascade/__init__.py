"""Coarse-to-fine cascade (DeepOrgan / nnU-Net lowres -> fullres): find a small organ in a large scan fast.

- :mod:`.roi`: per-organ region of interest with a margin in mm, exact crop / paste-back geometry.
- :mod:`.pipeline`: :class:`CascadePipeline` (stage 1 coarse whole scan, stage 2 full resolution in the ROI).
- :mod:`.superpixels`: DeepOrgan's regional "zoom-out" stage on SLIC superpixels (optional).
- :mod:`.cascade_training`: out-of-fold stage-1 priors for stage-2 training, with a leakage guard.
- :mod:`.regional_training`: trains / loads the regional stage (recipe ``[cascade] superpixels = true``).
"""
from medseg.cascade.roi import Roi, crop_to_roi, paste_back, roi_from_mask

__all__ = ["Roi", "crop_to_roi", "paste_back", "roi_from_mask"]
