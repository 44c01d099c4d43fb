"""A1 k-NN with broadcasting and float64 internals that return the input's dtype, in-place accumulation into
a preallocated dists, a vote from one-hot counts, a classifier that stores views, folds from torch.split with
ceil(num_train / num_folds) rows (the same folds as torch.chunk), and best k by sorting on (-mean, k)."""

import math

import torch
import torch.nn.functional as F


def compute_distances_two_loops(x_train, x_test):
    a = x_train.view(x_train.shape[0], -1)
    b = x_test.view(x_test.shape[0], -1)
    dists = torch.zeros(a.shape[0], b.shape[0], dtype=a.dtype, device=a.device)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            dists[i, j] += (a[i] - b[j]).pow(2).sum()
    return dists


def compute_distances_one_loop(x_train, x_test):
    a = x_train.reshape(x_train.shape[0], -1).double()
    b = x_test.reshape(x_test.shape[0], -1).double()
    dists = torch.zeros(a.shape[0], b.shape[0], dtype=torch.float64, device=a.device)
    for j in range(b.shape[0]):
        dists[:, j] = ((a - b[j : j + 1]) ** 2).sum(dim=1)
    return dists.to(x_train.dtype)


def compute_distances_no_loops(x_train, x_test):
    a = x_train.reshape(x_train.shape[0], -1).to(torch.float64)
    b = x_test.reshape(x_test.shape[0], -1).to(torch.float64)
    dists = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * torch.mm(a, b.T)
    return dists.to(x_train.dtype)


def predict_labels(dists, y_train, k=1):
    _, nearest = torch.sort(dists, dim=0)
    labels = y_train[nearest[:k]]  # (k, num_test)
    votes = F.one_hot(labels, int(y_train.max()) + 1).sum(dim=0)  # (num_test, C)
    return votes.argmax(dim=1)


class KnnClassifier:
    def __init__(self, x_train, y_train):
        self.x_train = x_train.view(x_train.shape[0], -1)  # a view: it keeps the caller's memory
        self.y_train = y_train

    def predict(self, x_test, k=1):
        dists = compute_distances_no_loops(self.x_train, x_test.reshape(x_test.shape[0], -1))
        return predict_labels(dists, self.y_train, k)


def knn_cross_validate(x_train, y_train, num_folds=5, k_choices=None):
    if k_choices is None:
        k_choices = [1, 3, 5, 8, 10, 12, 15, 20, 50, 100]
    size = math.ceil(x_train.shape[0] / num_folds)
    x_train_folds = torch.split(x_train, size)
    y_train_folds = torch.split(y_train, size)
    k_to_accuracies = {}
    for k in k_choices:
        k_to_accuracies[k] = []
        for i in range(len(x_train_folds)):
            x_rest = torch.cat([f for j, f in enumerate(x_train_folds) if j != i])
            y_rest = torch.cat([f for j, f in enumerate(y_train_folds) if j != i])
            y_pred = predict_labels(compute_distances_no_loops(x_rest, x_train_folds[i]), y_rest, k)
            k_to_accuracies[k].append((y_pred == y_train_folds[i]).float().mean().item() * 100)
    return k_to_accuracies


def knn_get_best_k(k_to_accuracies):
    means = sorted((-sum(a) / len(a), k) for k, a in k_to_accuracies.items())
    return means[0][1]
