"""Training and fine-tuning: datasets, recipes, the loop, checkpoints, export."""
from medseg.training.config import Recipe, load_recipe
from medseg.training.loop import FitResult, fit

__all__ = ["FitResult", "Recipe", "fit", "load_recipe"]
