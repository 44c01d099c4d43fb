"""The grader's caps on A2's training: the kit's given train methods (a2_linear/classifiers.py) train at most what the
judge allows while it grades find_best_net and test_one_param_set, record what was asked, and otherwise do exactly
what they are asked. The heaviest real submission (a search that asks for 3000 iterations of batch 1000 per net, as
the course's GPU allows) grades within the caps, and the feedback names them.

No test here times anything: the caps are judged by what was trained (iterations, batch sizes), never by a clock.
"""

from __future__ import annotations

import re
import sys

import pytest
import torch

from a2_linear import classifiers
from a2_linear import two_layer_net as tln
from grader.course import manifest
from grader.judge.runner import grade
from grader.sandbox.host import Sandbox
from tests.conftest import ROOT, copy_submission, replace_function

pytestmark = pytest.mark.assignment("a2_linear")  # make test-assignment A=a2_linear

A2 = manifest.load("a2_linear", ROOT)


def a2_checks():
    """The module of A2's public checks, as the grader loads it."""
    from grader.judge.loading import load_checks

    return sys.modules[load_checks(A2, hidden=False)[0].body.__module__]


@pytest.fixture(autouse=True)
def no_caps():
    classifiers.set_training_caps()
    yield
    classifiers.set_training_caps()


def problem(N=12, D=5, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (N,), generator=g)
    return X, y


def trained_net(monkeypatch, *, nn_train=None, chunk=None, caps=None, **train_kw):
    """(params, stats) of a TwoLayerNet trained on a small problem from a fixed seed, under `caps`."""
    if nn_train is not None:
        monkeypatch.setattr(tln, "nn_train", nn_train)
    if chunk is not None:
        monkeypatch.setattr(classifiers, "CHUNK_ITERS", chunk)
    classifiers.set_training_caps(**(caps or {}))
    X, y = problem()
    torch.manual_seed(0)
    net = classifiers.TwoLayerNet(X.shape[1], 6, 3, dtype=torch.float64, device="cpu", std=0.1)
    stats = net.train(X, y, X[:5], y[:5], **train_kw)
    return net.params, stats


def course_nn_train(
    params, loss_func, pred_func, X, y, X_val, y_val, learning_rate=1e-3, learning_rate_decay=0.95, reg=5e-6,
    num_iters=100, batch_size=200, verbose=False,
):  # fmt: skip
    """The course's given loop: an epoch ends when it % iterations_per_epoch == 0 (after the first step too)."""
    num_train = X.shape[0]
    per_epoch = max(num_train // batch_size, 1)
    loss_history, train_acc_history, val_acc_history = [], [], []
    for it in range(num_iters):
        X_batch, y_batch = tln.sample_batch(X, y, num_train, batch_size)
        loss, grads = loss_func(params, X_batch, y=y_batch, reg=reg)
        loss_history.append(loss.item())
        for k in params:
            params[k] = params[k] - learning_rate * grads[k]
        if it % per_epoch == 0:
            train_acc_history.append((pred_func(params, loss_func, X_batch) == y_batch).double().mean().item())
            val_acc_history.append((pred_func(params, loss_func, X_val) == y_val).double().mean().item())
            learning_rate *= learning_rate_decay
    return {"loss_history": loss_history, "train_acc_history": train_acc_history, "val_acc_history": val_acc_history}


# ---- the kit's train methods -----------------------------------------------------------------------


def test_without_caps_train_does_what_it_is_asked_and_records_nothing(monkeypatch):
    _, stats = trained_net(monkeypatch, num_iters=17, batch_size=5, learning_rate=0.1)
    assert len(stats["loss_history"]) == 17 and len(stats["val_acc_history"]) == 17 // 2
    model = classifiers.LinearSVM()
    X, y = problem()
    assert len(model.train(X, y, num_iters=9, batch_size=4)) == 9
    assert classifiers.training_record() == []


def test_the_caps_bound_iterations_and_batches_and_the_record_says_what_was_asked(monkeypatch):
    caps = {"max_iters": 7, "max_batch_size": 3}
    _, stats = trained_net(monkeypatch, caps=caps, num_iters=3000, batch_size=1000, learning_rate=0.1)
    assert len(stats["loss_history"]) == 7  # 7 iterations of batch 3: 12 // 3 = 4 per epoch, 1 epoch ended
    assert len(stats["val_acc_history"]) == 1
    X, y = problem()
    model = classifiers.Softmax()
    assert len(model.train(X, y, num_iters=2, batch_size=1000)) == 2  # fewer than the cap: as asked
    (net, linear) = classifiers.training_record()
    assert (net["model"], net["num_iters"], net["batch_size"], net["iters"], net["batch"], net["stopped"]) == (
        "TwoLayerNet",
        3000,
        1000,
        7,
        3,
        "iterations",
    )
    assert (linear["model"], linear["iters"], linear["batch"], linear["stopped"]) == ("Softmax", 2, 3, None)
    classifiers.set_training_caps()  # lifting the caps clears the record
    assert classifiers.training_record() == []


@pytest.mark.parametrize("nn_train", [None, course_nn_train], ids=["kit loop", "course loop"])
def test_a_time_cap_trains_in_chunks_of_whole_epochs_that_make_the_same_run(monkeypatch, nn_train):
    """Under a time cap the training runs in chunks (each a call of the student's trainer that goes on where the
    last one stopped, at the learning rate decayed so far): the same steps, minibatches and histories as one call."""
    kw = {"num_iters": 23, "batch_size": 4, "learning_rate": 0.3, "learning_rate_decay": 0.7, "reg": 1e-3}
    want_p, want_stats = trained_net(monkeypatch, nn_train=nn_train, **kw)
    got_p, got_stats = trained_net(monkeypatch, nn_train=nn_train, chunk=2, caps={"max_seconds": 1e9}, **kw)
    (entry,) = classifiers.training_record()
    assert entry["iters"] == 23 and entry["stopped"] is None
    assert got_stats == want_stats
    assert all(torch.equal(got_p[k], want_p[k]) for k in want_p)
    assert len(want_stats["val_acc_history"]) == (8 if nn_train else 7)  # 3 iterations an epoch, chunks of 3


def test_a_time_cap_chunks_the_linear_classifiers_run_the_same(monkeypatch):
    X, y = problem(N=30, D=6, C=4)
    runs = []
    for caps in ({}, {"max_seconds": 1e9}):
        monkeypatch.setattr(classifiers, "CHUNK_ITERS", 3)
        classifiers.set_training_caps(**caps)
        torch.manual_seed(1)
        model = classifiers.LinearSVM()
        runs.append((model.train(X, y, learning_rate=0.1, num_iters=20, batch_size=7), model.W))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    assert len(runs[1][0]) == 20


def test_a_time_cap_stops_at_the_end_of_an_epoch(monkeypatch):
    _, stats = trained_net(monkeypatch, chunk=5, caps={"max_seconds": 0.0}, num_iters=100, batch_size=4)
    (entry,) = classifiers.training_record()
    assert entry["stopped"] == "time" and entry["iters"] == 6 == len(stats["loss_history"])  # 2 epochs of 3


# ---- the judge's side ------------------------------------------------------------------------------


def test_the_caps_fit_the_reference_and_the_docstrings_state_them():
    scale = a2_checks().SCALE
    digits, cifar = scale["digits"]["net_caps"], scale["cifar10"]["net_caps"]
    doc = tln.__doc__
    assert (
        f"{digits['max_iters']} iterations, in batches of at most {digits['max_batch_size']} examples, and "
        f"{digits['max_seconds']:g} s on the offline digits" in " ".join(doc.split())
    )
    assert f"({cifar['max_iters']} iterations of batch {cifar['max_batch_size']} and {cifar['max_seconds']:g} s on" in (
        " ".join(doc.split())
    )
    # test_one_param_set's caps lie above what the check asks for (2 x num_iters, 2 x the default batch)
    lc_doc = " ".join(sys.modules["a2_linear.linear_classifier"].test_one_param_set.__doc__.split())
    assert f"batches of at most {2 * a2_checks().DEFAULT_BATCH}" in lc_doc and "twice the num_iters" in lc_doc


def test_the_feedback_names_the_caps():
    checks = a2_checks()
    caps = {"max_iters": 300, "max_batch_size": 200, "max_seconds": 15.0}
    record = [
        {"model": "TwoLayerNet", "num_iters": 3000, "batch_size": 1000, "iters": 300, "batch": 200, "seconds": 2.0,
         "stopped": "iterations"},
        {"model": "TwoLayerNet", "num_iters": 3000, "batch_size": 1000, "iters": 120, "batch": 200, "seconds": 15.5,
         "stopped": "time"},
    ]  # fmt: skip
    text = checks.describe_training(record, caps, "TwoLayerNet.train", "digits")
    assert text.startswith("TwoLayerNet.train ran 2 times, asked for 3000 iterations of batch 1000: ")
    assert "trained for at most 300 of your 3000 iterations" in text
    assert "in batches of at most 200 of your 1000" in text
    assert "1 call stopped at the time cap (15 s) after 120 iterations" in text
    assert "17.5 s in all" in text
    assert text.endswith(
        "(the grader's caps on digits: at most 300 iterations, in batches of at most 200, and at most 15 s per "
        "train call)"
    )
    asked = [{**record[0], "num_iters": 100, "batch_size": 50, "iters": 100, "batch": 50, "stopped": None}]
    assert "trained as asked (100 iterations)" in checks.describe_training(asked, caps, "TwoLayerNet.train", "digits")
    assert checks.describe_training([], caps, "TwoLayerNet.train", "digits").startswith("TwoLayerNet.train was not")


# ---- grading: the heaviest real submission ---------------------------------------------------------
# A real student's search (public code): every combination trained for 3000 iterations of batch 1000 through the
# kit's TwoLayerNet.train, as the course's GPU allows, over a 3 x 3 x 3 grid. On the digits the judge hands
# find_best_net its own small grids (SCALE's net_grid and the hidden variant's); without the caps each net took over
# a minute on one core and the hidden grading of A2 over ten.

HEAVY_FIND_BEST_NET = """
def find_best_net(data_dict, get_param_set_fn):
    best_net, best_stat, best_val_acc = None, None, 0.0
    X_train, y_train = data_dict["X_train"], data_dict["y_train"]
    X_val, y_val = data_dict["X_val"], data_dict["y_val"]
    D, C = X_train.shape[1], int(y_train.max().item()) + 1
    learning_rates, hidden_sizes, regs, decays = get_param_set_fn()
    for lr in learning_rates:
        for hs in hidden_sizes:
            for reg in regs:
                for decay in decays:
                    net = TwoLayerNet(D, hs, C, dtype=X_train.dtype, device=X_train.device)
                    stat = net.train(X_train, y_train, X_val, y_val, num_iters=3000, batch_size=1000,
                                     learning_rate=lr, learning_rate_decay=decay, reg=reg)
                    val_acc = (net.predict(X_val) == y_val).double().mean().item()
                    if val_acc > best_val_acc:
                        best_net, best_stat, best_val_acc = net, stat, val_acc
    return best_net, best_stat, best_val_acc
"""

HEAVY_SEARCH = """
def nn_get_search_params():
    return [1e-1, 3e-1, 1e0], [64, 128, 256], [1e-5, 1e-4, 1e-3], [0.95]
"""

# test_one_param_set that ignores the num_iters it is given and trains as long as the course's notebook does
ONE_PARAM_SET_TOO_LONG = """
def test_one_param_set(cls, data_dict, lr, reg, num_iters=2000):
    cls.train(data_dict["X_train"], data_dict["y_train"], learning_rate=lr, reg=reg, num_iters=3000,
              batch_size=1000)
    train_acc = (cls.predict(data_dict["X_train"]) == data_dict["y_train"]).double().mean().item()
    val_acc = (cls.predict(data_dict["X_val"]) == data_dict["y_val"]).double().mean().item()
    return cls, train_acc, val_acc
"""


def heavy_submission(dest):
    sub = copy_submission(dest, packages=("a2_linear",))
    path = sub / "a2_linear/two_layer_net.py"
    replace_function(path, "find_best_net", HEAVY_FIND_BEST_NET)
    replace_function(path, "nn_get_search_params", HEAVY_SEARCH)
    return sub


class CallSpy:
    """The replies of the judge's calls into the sandbox, by the name called."""

    def __init__(self, monkeypatch) -> None:
        self.replies: dict[str, list] = {}
        original = Sandbox.call

        def call(sandbox, module, attr, *args, **kwargs):
            reply = original(sandbox, module, attr, *args, **kwargs)
            self.replies.setdefault(attr, []).append(reply)
            return reply

        monkeypatch.setattr(Sandbox, "call", call)


@pytest.mark.slow
def test_the_heaviest_real_search_grades_within_the_caps(tmp_path, monkeypatch):
    spy = CallSpy(monkeypatch)
    result = grade(heavy_submission(tmp_path), "a2_linear", device="cpu", hidden=True, parts=["two_layer"])
    assert [(c.id, c.output) for c in result.checks if not c.passed] == []
    caps = a2_checks().SCALE["digits"]["net_caps"]
    searches = [c for c in result.checks if c.function == "find_best_net"]
    assert len(searches) == 2 and any(c.hidden for c in searches)
    for c in searches:  # the feedback names the caps and what they cut
        assert f"trained for at most {caps['max_iters']} of your 3000 iterations" in c.output, c.output
        assert f"in batches of at most {caps['max_batch_size']} of your 1000" in c.output, c.output
        assert "the grader's caps on digits" in c.output
    # what was trained, as find_best_net's own results show it: each best net's loss history is capped
    best = [r.value for r in spy.replies["find_best_net"]]
    assert len(best) == 2 and all(len(stat["loss_history"]) == caps["max_iters"] for _, stat, _ in best)
    # and as the kit recorded it: one capped run per combination of the judge's grids (3 and 4)
    records = [r.value for r in spy.replies["training_record"]]
    assert sorted(len(rec) for rec in records) == [3, 4]
    for rec in records:
        for r in rec:
            assert (r["num_iters"], r["batch_size"]) == (3000, 1000)
            assert r["iters"] <= caps["max_iters"] and r["batch"] <= caps["max_batch_size"]
            assert r["stopped"] in ("iterations", "time")
    assert len(spy.replies["set_training_caps"]) == 4  # set before each search, lifted after it
    trained = sum(r["iters"] * r["batch"] for rec in records for r in rec)
    assert trained <= 7 * caps["max_iters"] * caps["max_batch_size"]  # examples seen: 7 capped nets' worth
    assert re.search(r"\d+\.\d s in all", searches[0].output)


@pytest.mark.slow
def test_a_test_one_param_set_that_trains_too_long_is_capped_and_still_loses_its_points(tmp_path, monkeypatch):
    spy = CallSpy(monkeypatch)
    sub = copy_submission(tmp_path, packages=("a2_linear",))
    replace_function(sub / "a2_linear/linear_classifier.py", "test_one_param_set", ONE_PARAM_SET_TOO_LONG)
    result = grade(sub, "a2_linear", device="cpu", parts=["linear"])
    lost = {c.id: c.output for c in result.checks if not c.passed}
    assert set(lost) == {"a2.linear.test_one_param_set"}, lost
    text = lost["a2.linear.test_one_param_set"]
    num_iters = a2_checks().SCALE["digits"]["one_param_iters"]
    assert "train cls once, on the training set, with the lr, reg and num_iters passed in" in text
    assert f"trained for at most {2 * num_iters} of your 3000 iterations" in text, text
    assert "in batches of at most 400 of your 1000" in text, text
    (record,) = [r.value for r in spy.replies["training_record"]]
    assert [(r["iters"], r["batch"]) for r in record] == [(2 * num_iters, 400)]


@pytest.mark.slow
def test_the_heaviest_search_with_a_wrong_selection_still_loses_its_points(tmp_path):
    """The caps make training shorter, never wrong code right: the same heavy search keeping the last net
    instead of the best fails the public check, with the caps still named."""
    sub = heavy_submission(tmp_path)
    path = sub / "a2_linear/two_layer_net.py"
    text = path.read_text()
    assert text.count("if val_acc > best_val_acc:") == 1
    path.write_text(text.replace("if val_acc > best_val_acc:", "if True:  # keeps the last net, not the best"))
    result = grade(sub, "a2_linear", device="cpu", parts=["two_layer"])
    search = next(c for c in result.checks if c.function == "find_best_net")
    assert not search.passed and search.score == 0
    assert "below the target" in search.output and "the grader's caps" in search.output, search.output
    assert "trained for at most" in search.output
    assert {c.function for c in result.checks if not c.passed} == {"find_best_net"}
