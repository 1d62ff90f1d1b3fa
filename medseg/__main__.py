"""``python -m medseg`` runs the CLI."""
from medseg.cli.main import entry

entry()
