"""
The reference solution of A4 (a4_rnn) against PyTorch: every forward pass against a plain PyTorch statement (and
torch.nn.RNN / torch.nn.LSTM, whose gates PyTorch orders i, f, g, o), every backward pass against autograd in
float64 and a centred numeric gradient; the course's oracles agree with the reference; graded, the reference scores
full marks with and without the hidden checks and the student kit scores 0.
"""

import importlib.util

import pytest
import torch
import torch.nn.functional as F

import dlcv
from a4_rnn import captioning, data
from a4_rnn import lstm_layers as L
from a4_rnn import rnn_layers as R
from grader.course import manifest
from grader.judge.runner import grade
from grader.kit.release import stub_source
from tests.a3.test_reference import _numeric as numeric  # centred numeric gradients, one per input
from tests.conftest import ROOT, copy_submission

pytestmark = pytest.mark.assignment("a4_rnn")  # make test-assignment A=a4_rnn

M = manifest.load("a4_rnn", ROOT)
f64 = torch.float64

spec = importlib.util.spec_from_file_location("a4_oracles", ROOT / "assignments" / "a4_rnn" / "oracles.py")
O = importlib.util.module_from_spec(spec)
spec.loader.exec_module(O)


def rand(*shape, seed=0, scale=1.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=f64)


def vjp(f, inputs, douts):
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    outs = f(*leaves)
    outs = outs if isinstance(outs, tuple) else (outs,)
    return torch.autograd.grad(sum((o * d).sum() for o, d in zip(outs, douts)), leaves)


def close(ours, theirs, tol=1e-9):
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape and dlcv.rel_error(a, b) < tol, dlcv.rel_error(a, b)


def rnn_inputs(N=3, T=4, D=5, H=6, seq=True):
    x = rand(N, T, D) if seq else rand(N, D)
    return [
        x,
        rand(N, H, seed=1, scale=0.5),
        rand(D, H, seed=2, scale=0.4),
        rand(H, H, seed=3, scale=0.4),
        rand(H, seed=4),
    ]


def lstm_inputs(N=3, T=4, D=5, H=6):
    return [
        rand(N, T, D),
        rand(N, H, seed=1),
        rand(D, 4 * H, seed=2, scale=0.4),
        rand(H, 4 * H, seed=3, scale=0.4),
        rand(4 * H, seed=4),
    ]


def test_rnn_step_against_autograd_and_numeric_gradients():
    args = rnn_inputs(seq=False)
    step = lambda *a: R.rnn_step_forward(*a)[0]  # noqa: E731
    out, cache = R.rnn_step_forward(*args)
    assert dlcv.rel_error(out, torch.tanh(args[0] @ args[2] + args[1] @ args[3] + args[4])) < 1e-14
    dout = rand(*out.shape, seed=9)
    ours = R.rnn_step_backward(dout, cache)
    close(ours, vjp(step, args, [dout]))
    close(ours, numeric(step, args, dout), tol=1e-7)


def test_rnn_matches_torch_nn_rnn_and_autograd():
    x, h0, Wx, Wh, b = rnn_inputs()
    rnn = torch.nn.RNN(5, 6, batch_first=True, dtype=f64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(Wx.t()), rnn.weight_hh_l0.copy_(Wh.t()), rnn.bias_ih_l0.copy_(b), rnn.bias_hh_l0.zero_()
        want, _ = rnn(x, h0[None])
    h, cache = R.rnn_forward(x, h0, Wx, Wh, b)
    assert dlcv.rel_error(h, want) < 1e-12
    dh = rand(*h.shape, seed=9)
    ours = R.rnn_backward(dh, cache)
    f = lambda *a: R.rnn_forward(*a)[0]  # noqa: E731
    close(ours, vjp(f, [x, h0, Wx, Wh, b], [dh]))
    close(ours, numeric(f, [x, h0, Wx, Wh, b], dh), tol=1e-7)


def test_lstm_matches_torch_nn_lstm_and_autograd():
    x, h0, Wx, Wh, b = lstm_inputs()
    H = 6
    reorder = lambda w: torch.cat([w[..., : 2 * H], w[..., 3 * H :], w[..., 2 * H : 3 * H]], dim=-1)  # noqa: E731 i,f,g,o
    lstm = torch.nn.LSTM(5, H, batch_first=True, dtype=f64)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(reorder(Wx).t()), lstm.weight_hh_l0.copy_(reorder(Wh).t())
        lstm.bias_ih_l0.copy_(reorder(b)), lstm.bias_hh_l0.zero_()
        want, _ = lstm(x, (h0[None], torch.zeros_like(h0)[None]))
    h, cache = L.lstm_forward(x, h0, Wx, Wh, b)
    assert dlcv.rel_error(h, want) < 1e-12
    dh = rand(*h.shape, seed=9)
    ours = L.lstm_backward(dh, cache)
    f = lambda *a: L.lstm_forward(*a)[0]  # noqa: E731
    close(ours, vjp(f, [x, h0, Wx, Wh, b], [dh]))
    close(ours, numeric(f, [x, h0, Wx, Wh, b], dh), tol=1e-7)


def test_lstm_step_backward_with_both_upstream_gradients():
    x, h, c = rand(3, 4), rand(3, 5, seed=1), rand(3, 5, seed=2)
    Wx, Wh, b = rand(4, 20, seed=3), rand(5, 20, seed=4), rand(20, seed=5)
    next_h, next_c, cache = L.lstm_step_forward(x, h, c, Wx, Wh, b)
    dh, dc = rand(3, 5, seed=6), rand(3, 5, seed=7)
    f = lambda *a: L.lstm_step_forward(*a)[:2]  # noqa: E731
    close(L.lstm_step_backward(dh, dc, cache), vjp(f, [x, h, c, Wx, Wh, b], [dh, dc]))


def test_embedding_accumulates_repeated_words():
    x, W = torch.tensor([[0, 2, 2], [2, 1, 0]]), rand(4, 3)
    out, cache = R.word_embedding_forward(x, W)
    assert torch.equal(out, F.embedding(x, W))
    dout = rand(2, 3, 3, seed=1)
    close([R.word_embedding_backward(dout, cache)], vjp(lambda w: F.embedding(x, w), [W], [dout]))


def test_temporal_affine_and_softmax_loss():
    x, w, b = rand(2, 3, 4), rand(4, 5, seed=1), rand(5, seed=2)
    out, cache = R.temporal_affine_forward(x, w, b)
    dout = rand(2, 3, 5, seed=3)
    close(R.temporal_affine_backward(dout, cache), vjp(lambda *a: a[0] @ a[1] + a[2], [x, w, b], [dout]))
    scores, y = rand(3, 4, 6, scale=10), torch.randint(0, 6, (3, 4), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)

    def loss_fn(s):
        ce = F.cross_entropy(s.reshape(12, 6), y.reshape(12), reduction="none").reshape(3, 4)
        return (ce * mask).sum() / 3

    loss, dx = R.temporal_softmax_loss(scores, y, mask)
    assert float(loss) == pytest.approx(float(loss_fn(scores)), rel=1e-12)
    close([dx], vjp(loss_fn, [scores], [torch.tensor(1.0, dtype=f64)]))
    assert torch.all(dx[~mask] == 0)


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_captioning_loss_against_autograd(cell_type):
    torch.manual_seed(0)
    d = data.load_digit_captions(dtype=f64)
    model = captioning.CaptioningRNN(d["word_to_idx"], 64, 8, 10, cell_type=cell_type, dtype=f64)
    feats, caps = d["train_features"][:7], d["train_captions"][:7]
    loss, grads = model.loss(feats, caps)

    def loss_fn(**p):
        m = captioning.CaptioningRNN(d["word_to_idx"], 64, 8, 10, cell_type=cell_type, dtype=f64)
        h0 = feats @ p["W_proj"] + p["b_proj"]
        x = p["W_embed"][caps[:, :-1]]
        h, c, states = h0, torch.zeros_like(h0), []
        for t in range(x.shape[1]):
            a = x[:, t] @ p["Wx"] + h @ p["Wh"] + p["b"]
            if cell_type == "rnn":
                h = torch.tanh(a)
            else:
                i, f, o, g = a.split(10, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            states.append(h)
        scores = torch.stack(states, 1) @ p["W_vocab"] + p["b_vocab"]
        y = caps[:, 1:]
        ce = F.cross_entropy(scores.reshape(-1, scores.shape[-1]), y.reshape(-1), reduction="none").reshape(y.shape)
        return (ce * (y != m._null)).sum() / y.shape[0]

    keys = list(model.params)
    leaves = {k: model.params[k].clone().requires_grad_(True) for k in keys}
    want = loss_fn(**leaves)
    assert float(loss) == pytest.approx(float(want.detach()), rel=1e-12)
    close([grads[k] for k in keys], torch.autograd.grad(want, [leaves[k] for k in keys]))


def test_the_digit_captions_are_the_right_words():
    d = data.load_digit_captions()
    words = data.decode_captions(d["test_captions"][:20], d["idx_to_word"])
    for label, caption in zip(d["test_labels"][:20].tolist(), words):
        assert caption.split()[-1] == data.NUMBERS[label]
    assert d["train_features"].shape == (1500, 64) and d["train_captions"].shape == (1500, 6)


ORACLE_CALLS = {
    "rnn_step_forward": (R, lambda: rnn_inputs(seq=False)),
    "rnn_forward": (R, rnn_inputs),
    "lstm_forward": (L, lstm_inputs),
    "lstm_step_forward": (
        L,
        lambda: [
            rand(3, 4),
            rand(3, 5, seed=1),
            rand(3, 5, seed=2),
            rand(4, 20, seed=3),
            rand(5, 20, seed=4),
            rand(20, seed=5),
        ],
    ),
    "word_embedding_forward": (R, lambda: [torch.tensor([[0, 2, 2], [2, 1, 0]]), rand(4, 3)]),
    "temporal_affine_forward": (R, lambda: [rand(2, 3, 4), rand(4, 5, seed=1), rand(5, seed=2)]),
}


@pytest.mark.parametrize("forward", sorted(ORACLE_CALLS))
def test_the_oracles_agree_with_the_reference_and_share_its_cache_layout(forward):
    module, inputs = ORACLE_CALLS[forward]
    backward = forward.replace("forward", "backward")
    args = inputs()
    ours, theirs = getattr(module, forward)(*args), O.ORACLES[forward](*args)
    close(ours[:-1], theirs[:-1], tol=1e-14)
    douts = [rand(*o.shape, seed=7 + i) for i, o in enumerate(ours[:-1])]
    want = getattr(module, backward)(*douts, ours[-1])
    want = want if isinstance(want, tuple) else (want,)
    for cache in (ours[-1], theirs[-1]):  # each backward reads the other's cache: the layouts are the same
        for fn in (getattr(module, backward), O.ORACLES[backward]):
            got = fn(*douts, cache)
            close(got if isinstance(got, tuple) else (got,), want, tol=1e-12)


def test_the_loss_oracle_agrees():
    x, y = rand(3, 4, 6), torch.randint(0, 6, (3, 4), generator=torch.Generator().manual_seed(0))
    mask = torch.rand(3, 4, generator=torch.Generator().manual_seed(1)) < 0.5
    close(R.temporal_softmax_loss(x, y, mask), O.temporal_softmax_loss(x, y, mask), tol=1e-13)


@pytest.mark.parametrize("hidden", [False, True], ids=["public", "hidden"])
def test_the_reference_scores_full_marks(hidden):
    result = grade(ROOT, "a4_rnn", device="cpu", hidden=hidden)
    assert result.score == result.max_score == M.points, [c.output for c in result.checks if not c.passed]


def test_the_kits_stubs_score_nothing(tmp_path):
    sub = copy_submission(tmp_path, packages=("a4_rnn",))
    for f in M.files:
        (sub / f).write_text(stub_source((sub / f).read_text(), f)[0])
    result = grade(sub, "a4_rnn", device="cpu", kit=ROOT)
    assert result.score == 0
    assert all("not implemented yet" in c.output for c in result.checks), [c.output for c in result.checks]
