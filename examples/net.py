"""An example of your own model for `memlens audit --model examples/net.py:make_net`.

memlens calls ``make_net(input_shape, n_classes)`` once per model (under that model's seed) and trains the returned
module on the model's subset; ``input_shape`` is ``(C, H, W)`` for images, ``(d,)`` for rows.
"""
from torch import nn


def make_net(input_shape, n_classes):
    """A small CNN: two 3x3 convolutions with BatchNorm, max pooling, and a linear classifier."""
    c, h, w = input_shape
    return nn.Sequential(
        nn.Conv2d(c, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * (h // 2) * (w // 2), n_classes),
    )
