"""Floor 3: the U-Net, weight files (safetensors, hash-checked), the registry, devices, inference."""


from napari_prunuclei.models.unet import UNet, UNetConfig

__all__ = ["UNet", "UNetConfig"]
