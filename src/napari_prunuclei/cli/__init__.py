"""Floor 8: the `prunuclei` command (`main`)."""

from napari_prunuclei.cli.main import main

__all__ = ["main"]
