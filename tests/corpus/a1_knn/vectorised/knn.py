"""A1 k-NN in other correct idioms: distances summed over every image dimension without flattening, a loop over
the training images instead of the test images, einsum for the norms and products, a vote by bincount per test
image (the first maximum is the smallest label), a classifier that stores clones, cross-validation measured
with check_accuracy, and best k by max over sorted keys."""

import torch


def compute_distances_two_loops(x_train, x_test):
    dists = x_train.new_zeros(x_train.shape[0], x_test.shape[0])
    for i in range(x_train.shape[0]):
        for j in range(x_test.shape[0]):
            dists[i, j] = torch.sum((x_train[i] - x_test[j]) ** 2)
    return dists


def compute_distances_one_loop(x_train, x_test):
    a = x_train.flatten(1)
    b = x_test.flatten(1)
    dists = torch.empty(a.shape[0], b.shape[0], dtype=a.dtype, device=a.device)
    for i in range(a.shape[0]):
        dists[i] = ((b - a[i]) ** 2).sum(dim=1)
    return dists


def compute_distances_no_loops(x_train, x_test):
    a = x_train.flatten(1)
    b = x_test.flatten(1)
    a2 = torch.einsum("nd,nd->n", a, a)
    b2 = torch.einsum("md,md->m", b, b)
    cross = torch.einsum("nd,md->nm", a, b)
    return (a2[:, None] + b2[None, :] - 2 * cross).clamp(min=0)


def predict_labels(dists, y_train, k=1):
    nearest = torch.argsort(dists, dim=0)[:k]  # (k, num_test)
    labels = y_train[nearest]
    y_pred = torch.empty(dists.shape[1], dtype=torch.int64, device=dists.device)
    for j in range(dists.shape[1]):
        y_pred[j] = torch.bincount(labels[:, j]).argmax()
    return y_pred


class KnnClassifier:
    def __init__(self, x_train, y_train):
        self.x_train = x_train.clone()
        self.y_train = y_train.clone()

    def predict(self, x_test, k=1):
        return predict_labels(compute_distances_no_loops(self.x_train, x_test), self.y_train, k=k)


def knn_cross_validate(x_train, y_train, num_folds=5, k_choices=None):
    if k_choices is None:
        k_choices = [1, 3, 5, 8, 10, 12, 15, 20, 50, 100]
    x_folds = list(torch.chunk(x_train, num_folds))
    y_folds = list(torch.chunk(y_train, num_folds))
    k_to_accuracies = {k: [] for k in k_choices}
    for i in range(num_folds):
        x_rest = torch.cat(x_folds[:i] + x_folds[i + 1 :])
        y_rest = torch.cat(y_folds[:i] + y_folds[i + 1 :])
        classifier = KnnClassifier(x_rest, y_rest)
        for k in k_choices:
            k_to_accuracies[k].append(classifier.check_accuracy(x_folds[i], y_folds[i], k=k, quiet=True))
    return k_to_accuracies


def knn_get_best_k(k_to_accuracies):
    return max(sorted(k_to_accuracies), key=lambda k: sum(k_to_accuracies[k]) / len(k_to_accuracies[k]))
