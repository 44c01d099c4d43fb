"""
Code the course gives you for A1. It belongs to the course: the grader always runs this copy (a submission's copy
of this file is never used), and pytorch101.py and knn.py import what they need from it.
"""

from __future__ import annotations

import torch


def mm_on_cpu(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """
    Matrix product on the CPU.

    Inputs:
    - x: tensor of shape (N, M) on the CPU.
    - w: tensor of shape (M, P) on the CPU.

    Returns:
    - y: tensor of shape (N, P) on the CPU.
    """
    y = x.mm(w)  # (N, P)
    return y


class KnnAccuracy:
    """What every KNN classifier of the course can do once it can `predict`: measure its accuracy."""

    def check_accuracy(self, x_test: torch.Tensor, y_test: torch.Tensor, k: int = 1, quiet: bool = False) -> float:
        """
        Measure the accuracy of the classifier on labelled test data.

        Inputs:
        - x_test: tensor of shape (num_test, D1, ..., Dn).
        - y_test: int64 tensor of shape (num_test,), the true labels.
        - k: the number of neighbours that vote.
        - quiet: if True, print nothing.

        Returns:
        - accuracy: Python float, the percentage (0 to 100) of test images classified correctly.
        """
        y_test_pred = self.predict(x_test, k=k)  # (num_test,)
        num_samples = x_test.shape[0]
        num_correct = int((y_test == y_test_pred).sum().item())
        accuracy = 100.0 * num_correct / num_samples
        if not quiet:
            print(f"Got {num_correct} / {num_samples} correct; accuracy is {accuracy:.2f}%")
        return accuracy
