"""The course's own k-nearest-neighbour building blocks, for A1's checks.

When a composite (KnnClassifier, knn_cross_validate) fails and a building block it calls failed its own checks,
the grader judges the composite again with these in place of the student's blocks (see [parts.blocks] in
assignment.toml). Each has the student's signature and return convention, computes in the dtype and on the
device of its inputs and returns detached tensors. Staff only: the student kit has no oracles (the checks compute
their expected values themselves).

Self-contained: imports torch only, and never calls student code.
"""

from __future__ import annotations

import torch


def compute_distances_no_loops(x_train: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between flattened images, (num_train, num_test), in x_train's dtype."""
    a = x_train.detach().reshape(x_train.shape[0], -1).double()  # (num_train, D)
    b = x_test.detach().reshape(x_test.shape[0], -1).double()  # (num_test, D)
    return (torch.cdist(a, b) ** 2).to(x_train.dtype)


def predict_labels(dists: torch.Tensor, y_train: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Majority vote of each column's k smallest distances (num_test,) int64; a tie goes to the smallest label."""
    nearest = dists.detach().topk(k, dim=0, largest=False).indices  # (k, num_test)
    labels = y_train[nearest]  # (k, num_test)
    counts = torch.zeros(int(y_train.max()) + 1, dists.shape[1], dtype=torch.int64, device=dists.device)
    counts.scatter_add_(0, labels, torch.ones_like(labels))  # (C, num_test)
    return counts.argmax(dim=0)  # the first maximum: the smallest label


class KnnClassifier:
    """Memorises the training data; predicts with the two functions above."""

    def __init__(self, x_train: torch.Tensor, y_train: torch.Tensor):
        self.x_train, self.y_train = x_train, y_train

    def predict(self, x_test: torch.Tensor, k: int = 1) -> torch.Tensor:
        return predict_labels(compute_distances_no_loops(self.x_train, x_test), self.y_train, k=k)

    def check_accuracy(self, x_test: torch.Tensor, y_test: torch.Tensor, k: int = 1, quiet: bool = False) -> float:
        y_test_pred = self.predict(x_test, k=k)
        num_correct = int((y_test == y_test_pred).sum().item())
        accuracy = 100.0 * num_correct / x_test.shape[0]
        if not quiet:
            print(f"Got {num_correct} / {x_test.shape[0]} correct; accuracy is {accuracy:.2f}%")
        return accuracy


ORACLES = {
    "compute_distances_no_loops": compute_distances_no_loops,
    "predict_labels": predict_labels,
    "KnnClassifier": KnnClassifier,
}
