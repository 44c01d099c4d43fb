"""
Tests of dlcv.Solver with small models written here (a softmax regression with a hand-written gradient,
and scripted models whose accuracy is known in advance), so that they do not depend on any assignment.
"""

import time

import pytest
import torch

import dlcv


class SoftmaxRegression:
    """scores = X @ W + b with the mean softmax loss; the Solver's model contract in a few lines."""

    def __init__(self, D, C, dtype=torch.float64):
        self.params = {"W": torch.zeros(D, C, dtype=dtype), "b": torch.zeros(C, dtype=dtype)}

    def loss(self, X, y=None):
        X = X.reshape(X.shape[0], -1)
        scores = X @ self.params["W"] + self.params["b"]  # (N, C)
        if y is None:
            return scores
        N = X.shape[0]
        log_probs = scores.log_softmax(dim=1)  # (N, C)
        loss = -log_probs[torch.arange(N), y].mean()
        dscores = log_probs.exp()
        dscores[torch.arange(N), y] -= 1
        dscores /= N
        return loss, {"W": X.t() @ dscores, "b": dscores.sum(dim=0)}


class ScriptedModel:
    """
    Predicts the true label of example i (its index is stored as the example's single feature) exactly
    when params['w'] equals good[i]; the update rule `count_up` adds 1 to w at every step, so the
    accuracy after each step is known in advance.
    """

    def __init__(self, num_classes=3, delay=0.0):
        self.params = {"w": torch.zeros(())}
        self.num_classes = num_classes
        self.delay = delay

    def loss(self, X, y=None):
        if self.delay:
            time.sleep(self.delay)
        labels = X[:, 0].long() % self.num_classes  # the true labels of these examples
        N = X.shape[0]
        scores = torch.zeros(N, self.num_classes)
        correct = X[:, 1] == self.params["w"]  # (N,): right only when w hits the example's good value
        predicted = torch.where(correct, labels, (labels + 1) % self.num_classes)
        scores[torch.arange(N), predicted] = 1.0
        if y is None:
            return scores
        return torch.tensor(1.0) / (1 + self.params["w"]), {"w": torch.zeros(())}


def count_up(w, dw, config=None):
    config = {} if config is None else config
    config.setdefault("learning_rate", 1.0)
    return w + 1, config


def _blobs(N=200, D=5, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 3 * torch.randn(C, D, generator=g, dtype=torch.float64)
    y = torch.arange(N) % C
    X = centers[y] + torch.randn(N, D, generator=g, dtype=torch.float64)
    return X, y


def _data(N=200, D=5, C=3):
    X, y = _blobs(N, D, C)
    n = N * 3 // 4
    return {"X_train": X[:n], "y_train": y[:n], "X_val": X[n:], "y_val": y[n:]}


def _scripted_data(good_train, good_val):
    """Feature 0: the label (index); feature 1: the value of w at which the example is predicted right."""

    def make(good):
        n = len(good)
        X = torch.stack([torch.arange(n, dtype=torch.float32), torch.tensor(good, dtype=torch.float32)], dim=1)
        return X, torch.arange(n) % 3

    X_train, y_train = make(good_train)
    X_val, y_val = make(good_val)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}


def test_unknown_options_raise_value_error_naming_them():
    model = SoftmaxRegression(5, 3)
    with pytest.raises(ValueError, match="'learning_rate'"):
        dlcv.Solver(model, _data(), learning_rate=1e-3)
    with pytest.raises(ValueError, match="'foo'.*'bar'|'bar'.*'foo'"):
        dlcv.Solver(model, _data(), foo=1, bar=2, batch_size=10)


def test_update_rule_by_name_and_the_default():
    fc = pytest.importorskip("a3_networks.fully_connected_networks")
    model = SoftmaxRegression(5, 3)
    assert dlcv.Solver(model, _data()).update_rule is fc.sgd
    assert dlcv.Solver(model, _data(), update_rule="adam").update_rule is fc.adam
    assert dlcv.Solver(model, _data(), update_rule=count_up).update_rule is count_up
    with pytest.raises(ValueError, match="'no_such_rule'"):
        dlcv.Solver(model, _data(), update_rule="no_such_rule")


def test_training_lowers_the_loss_and_records_histories(capsys):
    dlcv.reset_seed(0)
    data = _data()
    model = SoftmaxRegression(5, 3)
    solver = dlcv.Solver(
        model,
        data,
        optim_config={"learning_rate": 0.5},  # the default update rule, sgd
        lr_decay=0.9,
        batch_size=30,
        num_epochs=5,
        verbose=False,
    )
    solver.train()
    iterations_per_epoch = data["X_train"].shape[0] // 30
    assert len(solver.loss_history) == 5 * iterations_per_epoch
    assert all(isinstance(v, float) for v in solver.loss_history)
    first, last = solver.loss_history[0], sum(solver.loss_history[-3:]) / 3
    assert first == pytest.approx(torch.log(torch.tensor(3.0)).item())  # zero weights: uniform scores
    assert last < 0.5 * first, f"loss went from {first} to {last}"
    # accuracies at the first step and at the end of every epoch (the last step ends the last epoch)
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 5 + 1
    assert solver.val_acc_history[-1] > 0.9 and solver.best_val_acc == max(solver.val_acc_history)
    assert solver.epoch == 5
    for config in solver.optim_configs.values():
        assert config["learning_rate"] == pytest.approx(0.5 * 0.9**5)
    assert solver.optim_config == {"learning_rate": 0.5}, "the Solver must not change the optim_config it was given"
    assert capsys.readouterr().out == "", "verbose=False must print nothing"


def test_verbose_prints_progress(capsys):
    solver = dlcv.Solver(SoftmaxRegression(5, 3), _data(), batch_size=50, num_epochs=2, print_every=1)
    solver.train()
    out = capsys.readouterr().out
    assert "loss" in out and "(Epoch 2 / 2)" in out


def test_check_accuracy_counts_exactly_in_batches():
    # w = 0 predicts an example right exactly when its "good" value is 0: 7 of these 10.
    data = _scripted_data([0, 0, 1, 0, 0, 2, 0, 0, 3, 0], [0])
    solver = dlcv.Solver(ScriptedModel(), data, update_rule=count_up, verbose=False)
    for batch_size in (1, 3, 10, 100):
        acc = solver.check_accuracy(data["X_train"], data["y_train"], batch_size=batch_size)
        assert isinstance(acc, float) and acc == pytest.approx(0.7)
    # num_samples draws a random subset of that size: its accuracy is a multiple of 1/4
    acc = solver.check_accuracy(data["X_train"], data["y_train"], num_samples=4)
    assert acc in (0.25, 0.5, 0.75, 1.0)
    assert solver.check_accuracy(data["X_train"], data["y_train"], num_samples=50) == pytest.approx(0.7)


def test_zero_samples_measure_no_accuracy_and_change_no_training():
    """num_*_samples=0 (the grader's overfit checks judge the final parameters themselves): the model is never
    asked for scores to measure accuracy, the histories hold 0.0, and the steps are those of a measured run."""
    calls = []

    class Counting(SoftmaxRegression):
        def loss(self, X, y=None):
            calls.append(y is None)
            return super().loss(X, y)

    runs = {}
    for n in (0, None):
        calls.clear()
        model = Counting(5, 3)
        solver = dlcv.Solver(
            model, _data(), num_train_samples=n, num_val_samples=n, batch_size=30, num_epochs=3, verbose=False
        )
        torch.manual_seed(0)
        solver.train(return_best_params=False)
        runs[n] = (model.params["W"].clone(), list(calls), solver.train_acc_history, solver.val_acc_history)
    W0, calls0, train0, val0 = runs[0]
    assert not any(calls0), "no accuracy was asked for, so the model computed only losses"
    assert train0 == val0 == [0.0] * 4
    assert any(runs[None][1]), "the measured run does ask for scores"
    assert len(calls0) == len(runs[None][1]) - sum(runs[None][1])
    assert W0.shape == runs[None][0].shape and not torch.equal(W0, torch.zeros_like(W0))


def test_return_best_params_keeps_the_best_validation_parameters():
    # One step per epoch (batch_size >= N), so accuracies are measured after every step, when w is the
    # number of steps taken: 1, 2, ..., 5. Validation examples are right only at w = 2.
    data = _scripted_data([0] * 6, [2, 2, 2, 9, 9, 9])
    solver = dlcv.Solver(ScriptedModel(), data, update_rule=count_up, batch_size=10, num_epochs=5, verbose=False)
    solver.train()
    assert solver.val_acc_history == pytest.approx([0.0, 0.5, 0.0, 0.0, 0.0])
    assert solver.best_val_acc == pytest.approx(0.5)
    assert solver.model.params["w"].item() == 2.0

    solver = dlcv.Solver(ScriptedModel(), data, update_rule=count_up, batch_size=10, num_epochs=5, verbose=False)
    solver.train(return_best_params=False)
    assert solver.model.params["w"].item() == 5.0
    assert solver.best_params["w"].item() == 2.0


def test_time_limit_stops_training():
    data = _scripted_data([0] * 20, [0] * 5)
    model = ScriptedModel(delay=0.02)  # every call to loss takes at least 20 ms
    solver = dlcv.Solver(
        model, data, update_rule=count_up, batch_size=1, num_epochs=100, num_train_samples=5, verbose=False
    )
    start = time.time()
    solver.train(time_limit=0.5)
    elapsed = time.time() - start
    assert 1 <= len(solver.loss_history) < 100 * 20
    assert elapsed < 3.0, f"training went on for {elapsed:.2f} s with time_limit=0.5"


def test_checkpoints_are_written(tmp_path):
    data = _data()
    name = str(tmp_path / "ckpt")
    solver = dlcv.Solver(
        SoftmaxRegression(5, 3), data, batch_size=50, num_epochs=2, checkpoint_name=name, verbose=False
    )
    solver.train()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["ckpt_epoch_0.pkl", "ckpt_epoch_1.pkl", "ckpt_epoch_2.pkl"]
    checkpoint = torch.load(tmp_path / "ckpt_epoch_2.pkl")
    assert checkpoint["epoch"] == 2 and len(checkpoint["val_acc_history"]) == 3
    assert set(checkpoint["params"]) == {"W", "b"}


@pytest.mark.parametrize("scale, steps", [("0.25", 5), ("0.01", 1), ("1", 20), ("0", 20), ("2", 20), ("x", 20)])
def test_the_report_runs_training_scale_trains_that_share_and_says_so(monkeypatch, capsys, scale, steps):
    """$DLCV_TRAINING_SCALE (set by the grader's report run from [limits] notebook_training_scale) trains
    that share of the iterations, at least one, and prints why; a value outside (0, 1) changes nothing."""
    monkeypatch.setenv("DLCV_TRAINING_SCALE", scale)
    data = _scripted_data([0] * 10, [0] * 5)
    solver = dlcv.Solver(ScriptedModel(), data, update_rule=count_up, batch_size=2, num_epochs=4, verbose=False)
    solver.train()
    assert len(solver.loss_history) == steps
    note = f"trains {steps} of the 20 iterations asked"
    assert (note in capsys.readouterr().out) == (steps < 20)
