"""Inference: sliding-window engine, stitching, restoring the scan geometry, outputs and batch runs."""
