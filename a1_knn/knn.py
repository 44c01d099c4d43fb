"""
A k-nearest-neighbour (KNN) image classifier.

Distances are squared Euclidean distances between flattened images, laid out (num_train, num_test):
dists[i, j] is the distance between the i-th training image and the j-th test image.

For every function here:
- return results with the device and dtype of the inputs (create new tensors with `device=` and `dtype=`
  taken from an input; computing in float64 inside is fine if the result is converted back), and do not
  modify the inputs. The grader checks the dtype and the device of every result;
- compute distances from sums and products (see the rules below); everything else in PyTorch is yours to use.

Data and targets: the grader uses CIFAR-10 where it is installed, else the offline digits (scikit-learn's 8x8
digits drawn as 3x32x32 images; `grader grade` says which): 5000 training and 500 test images of CIFAR-10, all
1500 and 297 of the digits. KnnClassifier with
k=1 must reach 25% on CIFAR-10 (90% on the digits), and the best k of knn_cross_validate 28% (90% on the digits).

Rules the grader enforces in this file (see `grader list --rules`):
- compute_distances_two_loops, compute_distances_one_loop, compute_distances_no_loops may not use:
  - torch.cdist, torch.pdist, torch.pairwise_distance, torch.nn.functional.pdist,
    torch.nn.functional.pairwise_distance, torch.nn.PairwiseDistance: it computes the distances you
    are asked to compute.
  - torch.dist, torch.Tensor.dist: it computes the distance you are asked to compute.
  - torch.norm, torch.Tensor.norm, torch.linalg.norm, torch.linalg.vector_norm: a norm is the
    distance you are asked to compute from sums and products.
- compute_distances_one_loop: at most 1 loop (for, while, comprehensions, map, filter,
  functools.reduce, itertools or recursion; loops in the helpers it calls count too).
- compute_distances_no_loops: no loops (for, while, comprehensions, map, filter, functools.reduce,
  itertools or recursion; loops in the helpers it calls count too).
- the file may use: only the modules torch, math, random, statistics, typing, abc, enum,
  collections, functools, itertools, dataclasses, a1_knn, dlcv (a use of another module holds back
  every function of the file; an import that nothing uses only earns a warning).

Your code goes where a TODO comment asks for it; leave the rest of the file as it is.
"""

from __future__ import annotations

import torch

from a1_knn.given import KnnAccuracy


def compute_distances_two_loops(x_train: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor:
    """
    Squared Euclidean distances between training and test images, with a loop over both.

    Each image is treated as one flat vector of D = D1 * ... * Dn numbers; the distance between vectors
    a and b is sum_d (a[d] - b[d])^2 (squared: no square root).

    Inputs:
    - x_train: tensor of shape (num_train, D1, ..., Dn).
    - x_test: tensor of shape (num_test, D1, ..., Dn), same dtype and device as x_train.

    Returns:
    - dists: tensor of shape (num_train, num_test), dtype and device of x_train; dists[i, j] is the squared
      Euclidean distance between x_train[i] and x_test[j].
    """
    num_train = x_train.shape[0]
    num_test = x_test.shape[0]
    dists = torch.zeros(num_train, num_test, dtype=x_train.dtype, device=x_train.device)  # (num_train, num_test)
    # TODO: Flatten each image into a vector, then loop over every training image i and every test image
    # j and compute their squared distance, one pair at a time, into dists[i, j]. Within a pair you may
    # use vector operations (no loop over the D entries).
    # BEGIN SOLUTION
    x_train_flat = x_train.reshape(num_train, -1)  # (num_train, D)
    x_test_flat = x_test.reshape(num_test, -1)  # (num_test, D)
    for i in range(num_train):
        for j in range(num_test):
            diff = x_train_flat[i] - x_test_flat[j]  # (D,)
            dists[i, j] = (diff * diff).sum()
    # END SOLUTION
    return dists


def compute_distances_one_loop(x_train: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor:
    """
    Squared Euclidean distances between training and test images, with a single loop.

    Same contract as `compute_distances_two_loops`.

    Inputs:
    - x_train: tensor of shape (num_train, D1, ..., Dn).
    - x_test: tensor of shape (num_test, D1, ..., Dn), same dtype and device as x_train.

    Returns:
    - dists: tensor of shape (num_train, num_test), dtype and device of x_train.
    """
    num_train = x_train.shape[0]
    num_test = x_test.shape[0]
    dists = torch.zeros(num_train, num_test, dtype=x_train.dtype, device=x_train.device)  # (num_train, num_test)
    # TODO: Flatten each image into a vector, then loop over the test images only: for test image j,
    # compute its squared distances to all training images at once (broadcasting) into column j of dists.
    # BEGIN SOLUTION
    x_train_flat = x_train.reshape(num_train, -1)  # (num_train, D)
    x_test_flat = x_test.reshape(num_test, -1)  # (num_test, D)
    for j in range(num_test):
        diff = x_train_flat - x_test_flat[j]  # (num_train, D)
        dists[:, j] = (diff * diff).sum(dim=1)  # (num_train,)
    # END SOLUTION
    return dists


def compute_distances_no_loops(x_train: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor:
    """
    Squared Euclidean distances between training and test images, without any Python loop.

    Same contract as `compute_distances_two_loops`. Memory matters: do not build a tensor of shape
    (num_train, num_test, D). Instead expand the square, ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b, so that
    all the cross terms a.b come from one matrix multiplication.

    Inputs:
    - x_train: tensor of shape (num_train, D1, ..., Dn).
    - x_test: tensor of shape (num_test, D1, ..., Dn), same dtype and device as x_train.

    Returns:
    - dists: tensor of shape (num_train, num_test), dtype and device of x_train.
    """
    num_train = x_train.shape[0]
    num_test = x_test.shape[0]
    dists = torch.zeros(num_train, num_test, dtype=x_train.dtype, device=x_train.device)  # (num_train, num_test)
    # TODO: Flatten each image into a vector. Compute the squared norm of every training vector and of
    # every test vector, and all training-test dot products with one matrix multiplication; combine the
    # three with broadcasting into dists. No loops, and no (num_train, num_test, D) intermediate.
    # BEGIN SOLUTION
    x_train_flat = x_train.reshape(num_train, -1)  # (num_train, D)
    x_test_flat = x_test.reshape(num_test, -1)  # (num_test, D)
    train_sq = (x_train_flat * x_train_flat).sum(dim=1)  # (num_train,)
    test_sq = (x_test_flat * x_test_flat).sum(dim=1)  # (num_test,)
    cross = x_train_flat @ x_test_flat.t()  # (num_train, num_test)
    dists = train_sq[:, None] + test_sq[None, :] - 2 * cross  # (num_train, num_test)
    # END SOLUTION
    return dists


def predict_labels(dists: torch.Tensor, y_train: torch.Tensor, k: int = 1) -> torch.Tensor:
    """
    Predict a label for every test image by a majority vote of its k nearest training images.

    If the vote is tied (two or more labels share the most votes among the k neighbours), predict the
    smallest of the tied labels. For example with neighbour labels [1, 0, 2, 0, 1] (k = 5), labels 0 and
    1 both have two votes and the prediction is 0.

    Inputs:
    - dists: tensor of shape (num_train, num_test), dists[i, j] the distance between training image i and
      test image j (as returned by the compute_distances_* functions).
    - y_train: int64 tensor of shape (num_train,) with the training labels, in [0, C), on dists' device.
    - k: the number of neighbours that vote, 1 <= k <= num_train.

    Returns:
    - y_pred: int64 tensor of shape (num_test,) on dists' device, the predicted label of each test image.
    """
    num_train, num_test = dists.shape
    assert 1 <= k <= num_train, f"k must be in [1, num_train={num_train}], got k={k}"
    y_pred = torch.zeros(num_test, dtype=torch.int64, device=dists.device)  # (num_test,)
    # TODO: For every test image (a column of dists), find the indices of its k smallest distances and
    # look up their training labels. Count the votes for each label and predict the label with the most
    # votes, the smallest label on a tie. Loops over the test images are allowed but not needed.
    # BEGIN SOLUTION
    _, nearest = dists.topk(k, dim=0, largest=False)  # (k, num_test), indices into the training set
    nearest_labels = y_train[nearest]  # (k, num_test)
    num_classes = int(y_train.max().item()) + 1
    votes = torch.zeros(num_classes, num_test, dtype=torch.int64, device=dists.device)  # (C, num_test)
    votes.scatter_add_(0, nearest_labels, torch.ones_like(nearest_labels))
    y_pred = votes.argmax(dim=0)  # (num_test,); argmax returns the first maximum, i.e. the smallest label
    # END SOLUTION
    return y_pred


class KnnClassifier(KnnAccuracy):
    """A KNN classifier: it memorises the training data and predicts by voting among the nearest images.
    `check_accuracy(x_test, y_test, k=1, quiet=False)` (given, in a1_knn/given.py) measures its accuracy in percent."""

    def __init__(self, x_train: torch.Tensor, y_train: torch.Tensor):
        """
        Memorise the training data.

        Inputs:
        - x_train: tensor of shape (num_train, D1, ..., Dn), the training images.
        - y_train: int64 tensor of shape (num_train,), their labels, on x_train's device.
        """
        # TODO: Store the training images and labels on the instance as self.x_train and self.y_train.
        # BEGIN SOLUTION
        self.x_train = x_train
        self.y_train = y_train
        # END SOLUTION

    def predict(self, x_test: torch.Tensor, k: int = 1) -> torch.Tensor:
        """
        Predict labels for test images, using `compute_distances_no_loops` and `predict_labels`.

        Inputs:
        - x_test: tensor of shape (num_test, D1, ..., Dn), same dtype and device as the training images.
        - k: the number of neighbours that vote.

        Returns:
        - y_test_pred: int64 tensor of shape (num_test,), the predicted labels.
        """
        y_test_pred = None
        # TODO: Compute the distances between the memorised training images and x_test (no loops), then
        # turn them into predicted labels with a vote among the k nearest neighbours.
        # BEGIN SOLUTION
        dists = compute_distances_no_loops(self.x_train, x_test)  # (num_train, num_test)
        y_test_pred = predict_labels(dists, self.y_train, k=k)  # (num_test,)
        # END SOLUTION
        return y_test_pred


def knn_cross_validate(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    num_folds: int = 5,
    k_choices: list[int] | None = None,
) -> dict[int, list[float]]:
    """
    Cross-validate the KNN classifier over several values of k.

    Split the training data, in order, into num_folds folds of (nearly) equal size, as `torch.chunk`
    does. For each value of k and each fold i, train a KnnClassifier on all the other folds and measure
    its accuracy on fold i.

    Inputs:
    - x_train: tensor of shape (num_train, D1, ..., Dn), the training images.
    - y_train: int64 tensor of shape (num_train,), their labels.
    - num_folds: the number of folds.
    - k_choices: the values of k to try; None means [1, 3, 5, 8, 10, 12, 15, 20, 50, 100].

    Returns:
    - k_to_accuracies: dict mapping each k in k_choices to a list of num_folds floats, where
      k_to_accuracies[k][i] is the accuracy (a percentage, 0 to 100) on fold i when it is held out.
    """
    if k_choices is None:
        k_choices = [1, 3, 5, 8, 10, 12, 15, 20, 50, 100]

    x_train_folds = []
    y_train_folds = []
    # TODO: Split x_train and y_train, in order, into num_folds folds each (lists or tuples of tensors).
    # BEGIN SOLUTION
    x_train_folds = torch.chunk(x_train, num_folds, dim=0)
    y_train_folds = torch.chunk(y_train, num_folds, dim=0)
    # END SOLUTION

    k_to_accuracies = {}
    # TODO: For each fold i, train on all the other folds together and validate on fold i: for each k,
    # append the accuracy (a percentage) on fold i to k_to_accuracies[k], in fold order.
    # (KnnClassifier and its check_accuracy method can do the measuring.)
    # BEGIN SOLUTION
    k_to_accuracies = {k: [] for k in k_choices}
    for i in range(len(x_train_folds)):
        x_val, y_val = x_train_folds[i], y_train_folds[i]  # (num_val, ...), (num_val,)
        x_rest = torch.cat(x_train_folds[:i] + x_train_folds[i + 1 :])  # (num_train - num_val, ...)
        y_rest = torch.cat(y_train_folds[:i] + y_train_folds[i + 1 :])  # (num_train - num_val,)
        # The distances do not depend on k: compute them once per fold and let every k vote on them.
        dists = compute_distances_no_loops(x_rest, x_val)  # (num_train - num_val, num_val)
        for k in k_choices:
            y_pred = predict_labels(dists, y_rest, k=k)  # (num_val,)
            accuracy = 100.0 * int((y_pred == y_val).sum().item()) / y_val.shape[0]
            k_to_accuracies[k].append(accuracy)
    # END SOLUTION
    return k_to_accuracies


def knn_get_best_k(k_to_accuracies: dict[int, list[float]]) -> int:
    """
    Pick the k with the highest mean cross-validation accuracy; on a tie, the smallest such k.

    Inputs:
    - k_to_accuracies: dict mapping k to a non-empty list of accuracies, as returned by
      `knn_cross_validate`.

    Returns:
    - best_k: int, the k whose accuracies have the highest mean (the smallest k among equal means).
    """
    best_k = 0
    # TODO: Compute the mean accuracy of every k and return the k with the largest mean; when several k
    # share the largest mean, return the smallest of them.
    # BEGIN SOLUTION
    best_mean = float("-inf")
    for k in sorted(k_to_accuracies):
        accuracies = k_to_accuracies[k]
        mean = sum(accuracies) / len(accuracies)
        if mean > best_mean:
            best_k, best_mean = k, mean
    # END SOLUTION
    return best_k
