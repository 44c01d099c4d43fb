"""Turning image tensors into pictures. matplotlib is imported only by the functions that draw."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """
    Convert an image tensor into an array that `plt.imshow` can show.

    Float images are taken to hold values in [0, 1]: they are scaled by 255, rounded and clipped to 0..255.
    uint8 images are used as they are.

    Inputs:
    - tensor: tensor of shape (C, H, W), float in [0, 1] or uint8 in 0..255, on any device.

    Returns:
    - image: uint8 numpy array of shape (H, W, C), on the CPU.
    """
    if tensor.dtype != torch.uint8:
        tensor = tensor.mul(255).add(0.5).clamp(0, 255).to(torch.uint8)  # (C, H, W)
    return tensor.permute(1, 2, 0).contiguous().cpu().numpy()  # (H, W, C)


def visualize_dataset(
    x_data: torch.Tensor,
    y_data: torch.Tensor,
    samples_per_class: int,
    class_list: Sequence[str],
    *,
    label_rows: bool = True,
) -> np.ndarray:
    """
    Make a grid of example images: one row per class, `samples_per_class` images per row, drawn at random
    (with Python's `random`, so `reset_seed` makes the grid repeatable).

    Show the result with `plt.imshow(visualize_dataset(...))`. With label_rows=True the class names are also
    written to the left of the rows on the current matplotlib axes (call it before imshow, in the same figure).
    A class with no images gets a row of black squares.

    Inputs:
    - x_data: tensor of shape (N, C, H, W), uint8 in 0..255 or float in [0, 1].
    - y_data: int64 tensor of shape (N,), labels in [0, len(class_list)).
    - samples_per_class: the number of images per row.
    - class_list: the class names, indexed by label.
    - label_rows: whether to write the class names with matplotlib.

    Returns:
    - image: uint8 numpy array of shape (H', W', C), the grid (2 pixels of padding between images).
    """
    from torchvision.utils import make_grid

    N, C, H, W = x_data.shape
    samples = []
    for y, _ in enumerate(class_list):
        idxs = (y_data == y).nonzero().view(-1)  # (num_y,)
        for _ in range(samples_per_class):
            if idxs.numel() == 0:
                samples.append(torch.zeros_like(x_data[0]))  # (C, H, W)
            else:
                samples.append(x_data[idxs[random.randrange(idxs.numel())].item()])  # (C, H, W)
    grid = make_grid(samples, nrow=samples_per_class)  # (C, H', W')

    if label_rows:
        import matplotlib.pyplot as plt

        for y, name in enumerate(class_list):
            plt.text(-4, (H + 2) * y + (H // 2 + 2), name, ha="right")
    return tensor_to_image(grid)
