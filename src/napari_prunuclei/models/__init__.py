"""Network definitions, weight files and the model registry."""

from .unet import UNet, UNetConfig

__all__ = ["UNet", "UNetConfig"]
