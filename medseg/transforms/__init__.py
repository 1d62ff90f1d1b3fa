"""Dictionary and array transforms (MONAI-style) that are specific to medseg."""
