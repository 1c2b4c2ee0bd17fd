"""U-Net used by both branches (semantic probability and distance regression)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["UNet", "UNetConfig"]


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of one branch.

    The default is the authors' layout: filters 16-32-64-128-256, two 3x3
    convolutions per level, max-pool down, 2x2 transposed convolution up,
    skip concatenation, one 1x1 output convolution (about 1.94 M parameters).
    ``norm`` is ``"batch"`` (BatchNorm after each 3x3 convolution) or ``"none"``.
    """

    in_channels: int = 3
    out_channels: int = 1
    base_filters: int = 16
    depth: int = 5
    norm: str = "batch"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @property
    def min_multiple(self) -> int:
        """Input sides must be multiples of this (one halving per pooling)."""
        return 2 ** (self.depth - 1)


def _double_conv(cin: int, cout: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, o in ((cin, cout), (cout, cout)):
        layers.append(nn.Conv2d(i, o, 3, padding=1, bias=norm == "none"))
        if norm == "batch":
            layers.append(nn.BatchNorm2d(o))
        elif norm != "none":
            raise ValueError(f"unknown norm {norm!r}: use 'batch' or 'none'")
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """Plain U-Net returning logits of shape (N, out_channels, H, W)."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        c = self.config
        widths = [c.base_filters * 2**i for i in range(c.depth)]
        self.down = nn.ModuleList()
        cin = c.in_channels
        for w in widths:
            self.down.append(_double_conv(cin, w, c.norm))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(w * 2, w, 2, stride=2))
            self.dec.append(_double_conv(w * 2, w, c.norm))
        self.head = nn.Conv2d(widths[0], c.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips[:-1])):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)
