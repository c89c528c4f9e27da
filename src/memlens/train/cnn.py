"""The built-in CNN (``memlens audit --model cnn``): a small residual network for 8x8 and 28x28 grey images and
32x32 colour images, trained as a vectorized population by :mod:`memlens.train.torch_module` with data augmentation
(random crops with padding, and horizontal flips where the data allows them) drawn per model and per step.

Architecture (``width`` w): a 3x3 convolution stem to w channels, then stages of w, 2w (and 4w for images larger than
8x8) channels; each stage is a residual block (3x3 conv, BatchNorm, ReLU, 3x3 conv, BatchNorm, plus the input, ReLU)
and all but the last are followed by a 3x3 convolution to the next width and 2x2 max pooling; global average
pooling and a linear layer give the logits. 8x8 digits: 8 -> 4 pixels, about 12k parameters at w = 16; 28x28: 28 ->
14 -> 7; 32x32: 32 -> 16 -> 8, about 50k parameters at w = 16.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from .._validation import MemlensInputError, check_int
from .torch_module import TorchModuleConfig

__all__ = ["residual_cnn", "strided_cnn", "CNNConfig", "make_config", "ARCHS"]

_SPEC = "memlens.train.cnn:residual_cnn"


def strided_cnn(input_shape, n_classes, *, width: int = 16):
    """A small, fast CNN: two 5x5 convolutions of stride 2 (``width`` and ``2 width`` channels, BatchNorm, ReLU) and
    a linear layer. On full Fashion-MNIST (width 16, 6 epochs, SGD with Nesterov momentum and a cosine schedule) it
    reaches about 90% test accuracy at 7.6 s per model-epoch on one core of this machine."""
    from torch import nn  # heavy: imported on first use

    if len(input_shape) != 3:
        raise MemlensInputError(f"model 'cnn' needs images (C, H, W); got input_shape {tuple(input_shape)}: give the "
                                "dataset an image_shape (e.g. image_shape=[28, 28] in the .npz)", param="model")
    c, h, w = input_shape
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    h4, w4 = (h2 + 1) // 2, (w2 + 1) // 2
    return nn.Sequential(nn.Conv2d(c, width, 5, stride=2, padding=2), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Conv2d(width, 2 * width, 5, stride=2, padding=2), nn.BatchNorm2d(2 * width), nn.ReLU(),
                         nn.Flatten(), nn.Linear(2 * width * h4 * w4, n_classes))


def residual_cnn(input_shape, n_classes, *, width: int = 16):
    """The built-in residual CNN for images ``input_shape = (C, H, W)`` (see the module docstring)."""
    from torch import nn  # heavy: imported on first use

    class Residual(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                      nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(x + self.body(x))

    if len(input_shape) != 3:
        raise MemlensInputError(f"model 'cnn' needs images (C, H, W); got input_shape {tuple(input_shape)}: give the "
                                "dataset an image_shape (e.g. image_shape=[28, 28] in the .npz)", param="model")
    c, h, _ = input_shape
    widths = [width, 2 * width] if h <= 8 else [width, 2 * width, 4 * width]
    layers = [nn.Conv2d(c, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    for i, w in enumerate(widths):
        layers.append(Residual(w))
        if i + 1 < len(widths):
            layers += [nn.Conv2d(w, widths[i + 1], 3, padding=1, bias=False), nn.BatchNorm2d(widths[i + 1]),
                       nn.ReLU(), nn.MaxPool2d(2)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], n_classes)]
    return nn.Sequential(*layers)


#: The built-in architectures: ``arch`` -> factory.
ARCHS = {"residual": residual_cnn, "strided": strided_cnn}


def _own_sha256() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@dataclass(frozen=True)
class CNNConfig(TorchModuleConfig):
    """The built-in CNN's training: :class:`~memlens.train.torch_module.TorchModuleConfig` with the factory fixed
    to :func:`residual_cnn` (``arch="residual"``) or :func:`strided_cnn` (``arch="strided"``: smaller and about
    4x cheaper per image), augmentation on, and the architecture's ``width`` (channels of the first stage)."""

    factory: str = _SPEC
    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    augment: bool = True
    width: int = 16
    arch: str = "residual"

    name = "cnn"

    def __post_init__(self):
        if self.factory != _SPEC:
            raise MemlensInputError(f"model 'cnn' has its own factory ({_SPEC}); got factory={self.factory!r}: use "
                                    "--model PATH.py:FUNC for your own module", param="model_params")
        object.__setattr__(self, "width", check_int("width", self.width, min_value=1))
        if self.arch not in ARCHS:
            raise MemlensInputError(f"arch must be one of {', '.join(ARCHS)}; got {self.arch!r}", param="arch")
        if not self.factory_sha256:
            object.__setattr__(self, "factory_sha256", _own_sha256())
        super().__post_init__()

    def make_factory(self):
        return partial(ARCHS[self.arch], width=self.width)


def make_config(**fields) -> CNNConfig:
    """The registry's ``make_config`` for ``cnn``: fields of :class:`CNNConfig`, unknown ones refused by name."""
    fields.pop("name", None)
    names = [f.name for f in dataclasses.fields(CNNConfig) if f.name != "callable_"]
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise MemlensInputError(f"unknown field(s) {', '.join(unknown)} for model 'cnn'; valid fields: "
                                f"{', '.join(n for n in names if n not in ('factory', 'factory_sha256'))}",
                                param="model_params")
    return CNNConfig(**fields)
