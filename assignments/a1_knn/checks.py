"""Public checks for A1. Each judges the student's function against an oracle computed here, in the judge,
with PyTorch's own ops in float64. Hidden variants (other seeds, shapes, edge cases) live in hidden.py."""

from __future__ import annotations

import torch

from grader.checks import check

# ---- oracles ------------------------------------------------------------------------------------


def sq_distances(x_train: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (num_train, num_test), in float64."""
    a = x_train.reshape(x_train.shape[0], -1).double().cpu()
    b = x_test.reshape(x_test.shape[0], -1).double().cpu()
    return torch.cdist(a, b) ** 2


def vote(dists: torch.Tensor, y_train: torch.Tensor, k: int) -> torch.Tensor:
    """Majority vote of the k nearest; a tie goes to the smallest label."""
    idx = dists.double().cpu().topk(k, dim=0, largest=False).indices  # (k, num_test)
    labels = y_train.cpu()[idx]                                       # (k, num_test)
    num_classes = int(y_train.max()) + 1
    counts = torch.zeros(num_classes, dists.shape[1], dtype=torch.int64)
    counts.scatter_add_(0, labels, torch.ones_like(labels))
    return counts.argmax(dim=0)                                       # first maximum = smallest label


# ---- warm-up --------------------------------------------------------------------------------------


@check("a1.warmup.create_sample_tensor", function="create_sample_tensor")
def create_sample_tensor(ctx):
    """create_sample_tensor returns the (3, 2) sample tensor"""
    expected = torch.zeros(3, 2)
    expected[0, 1], expected[1, 0] = 10, 100
    ctx.expect_tensor(ctx.call("create_sample_tensor"), expected.to(ctx.device), "the sample tensor",
                      dtype=torch.float32)


@check("a1.warmup.count_tensor_elements", function="count_tensor_elements", shape=(3, 4, 5))
def count_tensor_elements(ctx, shape):
    """count_tensor_elements counts the elements of tensors of several ranks"""
    for s in (shape, (7,), (2, 0, 3), ()):
        got = ctx.call("count_tensor_elements", torch.zeros(s, device=ctx.device))
        ctx.expect_type(got, int, f"the count for a tensor of shape {tuple(s)}")
        want = 1
        for d in s:
            want *= d
        ctx.expect(got == want, f"for a tensor of shape {tuple(s)}: expected {want} elements, found {got}.")


# ---- KNN ------------------------------------------------------------------------------------------


def _distances(ctx, function, num_train, num_test, shape, dtype):
    x_train = ctx.randn(num_train, *shape, dtype=dtype)
    x_test = ctx.randn(num_test, *shape, dtype=dtype)
    reply = ctx.invoke(function, x_train, x_test, return_args=True)
    ctx.expect_unchanged([x_train, x_test], reply, ["x_train", "x_test"])
    ctx.expect_tensor(reply.value, sq_distances(x_train, x_test).to(dtype), "the distances",
                      bound=1e-5 if dtype == torch.float32 else 1e-10,
                      hint="Distances are laid out (num_train, num_test) and are squared Euclidean distances.",
                      mistakes={"you return Euclidean distances; they should be squared":
                                sq_distances(x_train, x_test).sqrt()})


@check("a1.knn.distances_two_loops", function="compute_distances_two_loops",
       num_train=20, num_test=12, shape=(3, 4, 4), dtype=torch.float64)
def distances_two_loops(ctx, num_train, num_test, shape, dtype):
    """compute_distances_two_loops matches squared Euclidean distances"""
    _distances(ctx, "compute_distances_two_loops", num_train, num_test, shape, dtype)


@check("a1.knn.distances_one_loop", function="compute_distances_one_loop",
       num_train=20, num_test=12, shape=(3, 4, 4), dtype=torch.float64)
def distances_one_loop(ctx, num_train, num_test, shape, dtype):
    """compute_distances_one_loop matches squared Euclidean distances"""
    _distances(ctx, "compute_distances_one_loop", num_train, num_test, shape, dtype)


@check("a1.knn.distances_no_loops", function="compute_distances_no_loops",
       num_train=40, num_test=25, shape=(3, 4, 4), dtype=torch.float64)
def distances_no_loops(ctx, num_train, num_test, shape, dtype):
    """compute_distances_no_loops matches squared Euclidean distances"""
    _distances(ctx, "compute_distances_no_loops", num_train, num_test, shape, dtype)


@check("a1.knn.predict_labels_toy", function="predict_labels")
def predict_labels_toy(ctx):
    """predict_labels on the course's toy vote (ties go to the smallest label)"""
    dists = torch.tensor([[0.3, 0.4, 0.1], [0.4, 0.1, 0.2], [0.8, 0.5, 0.3], [0.9, 0.2, 0.9],
                          [0.1, 0.4, 0.6]], device=ctx.device)
    y_train = torch.tensor([0, 1, 0, 1, 2], device=ctx.device)
    for k in (1, 3):
        got = ctx.call("predict_labels", dists, y_train, k=k)
        ctx.expect_tensor(got, vote(dists, y_train, k).to(ctx.device), f"the labels with k={k}",
                          hint="A tied vote goes to the smallest label.")


@check("a1.knn.classifier_accuracy", function="KnnClassifier", num_train=None, num_test=None, k=1)
def classifier_accuracy(ctx, num_train, num_test, k):
    """KnnClassifier predicts like k-NN and reaches the data set's accuracy target"""
    x_train, y_train, x_test, y_test, _ = ctx.dataset()
    x_train, y_train = x_train[:num_train].float(), y_train[:num_train]
    x_test, y_test = x_test[:num_test].float(), y_test[:num_test]
    clf = ctx.call("KnnClassifier", x_train.to(ctx.device), y_train.to(ctx.device))
    pred = ctx.method(clf, "predict", x_test.to(ctx.device), k=k)    # the test labels stay in the judge
    expected = vote(sq_distances(x_train, x_test), y_train, k)
    ctx.expect_type(pred, torch.Tensor, "the predicted labels")
    ctx.expect(tuple(pred.shape) == (x_test.shape[0],),
               f"the predicted labels: expected shape ({x_test.shape[0]},), found {tuple(pred.shape)}.")
    agree = (pred.cpu() == expected).double().mean().item() * 100
    accuracy = (pred.cpu() == y_test).double().mean().item() * 100
    target = ctx.target("knn_k1_accuracy")
    ctx.note(f"accuracy {accuracy:.1f}% with k={k} on {ctx.run.dataset_name} (target {target:g}%)")
    ctx.expect(agree >= 99.0, f"only {agree:.1f}% of your predictions match k-nearest neighbours with k={k}.")
    ctx.expect(accuracy >= target, f"accuracy {accuracy:.1f}% is below the target {target:g}%.")
