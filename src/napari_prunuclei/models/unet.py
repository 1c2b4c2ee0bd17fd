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

    ``channels`` (a channel-pruned network, see :mod:`napari_prunuclei.pruning.channels`) lists
    the output channels of every convolution in forward order: per encoder level the
    two 3x3 convolutions, then per decoder level the transposed convolution and the two
    3x3 convolutions (``2 * depth + 3 * (depth - 1)`` numbers). ``None``: the widths
    ``base_filters * 2**level``.
    """

    in_channels: int = 3
    out_channels: int = 1
    base_filters: int = 16
    depth: int = 5
    norm: str = "batch"
    channels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.channels is not None:
            ch = tuple(int(c) for c in self.channels)
            if len(ch) != 2 * self.depth + 3 * (self.depth - 1) or min(ch) < 1:
                raise ValueError(f"channels must be {2 * self.depth + 3 * (self.depth - 1)} positive "
                                 f"counts for depth {self.depth}, got {self.channels!r}")
            object.__setattr__(self, "channels", ch)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["channels"] is None:
            del d["channels"]  # dense files stay as they were
        else:
            d["channels"] = list(d["channels"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def conv_channels(self) -> tuple[int, ...]:
        """Output channels of every convolution in forward order (see ``channels``)."""
        if self.channels is not None:
            return self.channels
        widths = [self.base_filters * 2**i for i in range(self.depth)]
        down = [w for w in widths for _ in range(2)]
        up = [w for w in reversed(widths[:-1]) for _ in range(3)]
        return tuple(down + up)

    @property
    def min_multiple(self) -> int:
        """Input sides must be multiples of this (one halving per pooling)."""
        return 2 ** (self.depth - 1)


def _double_conv(cin: int, mid: int, cout: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, o in ((cin, mid), (mid, cout)):
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
        ch = list(c.conv_channels())
        down, up = ch[: 2 * c.depth], ch[2 * c.depth:]
        self.down = nn.ModuleList()
        cin = c.in_channels
        skips = []
        for lvl in range(c.depth):
            mid, out = down[2 * lvl], down[2 * lvl + 1]
            self.down.append(_double_conv(cin, mid, out, c.norm))
            skips.append(out)
            cin = out
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for j, skip in enumerate(reversed(skips[:-1])):
            u, mid, out = up[3 * j: 3 * j + 3]
            self.up.append(nn.ConvTranspose2d(cin, u, 2, stride=2))
            self.dec.append(_double_conv(u + skip, mid, out, c.norm))
            cin = out
        self.head = nn.Conv2d(cin, c.out_channels, 1)

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
