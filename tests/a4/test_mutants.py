"""A4's classic bugs, each planted in a copy of the reference: it loses exactly its function's points (public and
hidden checks), its feedback names the mistake, and nothing else loses a point. In particular a backward pass
keeps its points when its forward pass is wrong (it is judged with the cache a right forward makes, and says so),
and a forward pass keeps its points when its backward pass is wrong. A forbidden operator reached through
torch.ops.aten is caught."""

from __future__ import annotations

import pytest

from grader.course import manifest
from grader.judge.runner import grade
from tests.conftest import ROOT, copy_submission, replace_function

pytestmark = pytest.mark.assignment("a4_rnn")  # make test-assignment A=a4_rnn

M = manifest.load("a4_rnn", ROOT)
POINTS = {f: p for part in M.parts for f, p in part.functions.items()}
RNN, LSTM, CAP = "a4_rnn/rnn_layers.py", "a4_rnn/lstm_layers.py", "a4_rnn/captioning.py"

# function -> (file, qualname, the bug's source, words its feedback must say)
MUTANTS = {
    "rnn_step_forward_no_bias": (
        RNN,
        "rnn_step_forward",
        """
        def rnn_step_forward(x, prev_h, Wx, Wh, b):
            next_h = torch.tanh(x @ Wx + prev_h @ Wh)
            cache = (x, prev_h, Wx, Wh, b, next_h)
            return next_h, cache
        """,
        "the bias b is not added",
    ),
    "rnn_step_backward_no_tanh_derivative": (
        RNN,
        "rnn_step_backward",
        """
        def rnn_step_backward(dnext_h, cache):
            x, prev_h, Wx, Wh, b, next_h = cache
            da = dnext_h
            return da @ Wx.t(), da @ Wh.t(), x.t() @ da, prev_h.t() @ da, da.sum(dim=0)
        """,
        "the derivative of tanh is missing",
    ),
    "rnn_forward_every_step_from_h0": (
        RNN,
        "rnn_forward",
        """
        def rnn_forward(x, h0, Wx, Wh, b):
            N, T, D = x.shape
            h = torch.zeros(N, T, h0.shape[1], dtype=x.dtype, device=x.device)
            caches = []
            for t in range(T):
                next_h, step_cache = rnn_step_forward(x[:, t], h0, Wx, Wh, b)
                h[:, t] = next_h
                caches.append(step_cache)
            return h, caches
        """,
        "every step starts from h0",
    ),
    "rnn_backward_not_carried": (
        RNN,
        "rnn_backward",
        """
        def rnn_backward(dh, cache):
            N, T, H = dh.shape
            x0, _, Wx, Wh, _, _ = cache[0]
            dx = torch.zeros(N, T, x0.shape[1], dtype=dh.dtype)
            dWx, dWh, db = torch.zeros_like(Wx), torch.zeros_like(Wh), torch.zeros(H, dtype=dh.dtype)
            for t in reversed(range(T)):
                dx[:, t], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t], cache[t])
                dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
            return dx, dprev_h, dWx, dWh, db
        """,
        "is not added to dh[:, t]",
    ),
    "embedding_backward_assigns": (
        RNN,
        "word_embedding_backward",
        """
        def word_embedding_backward(dout, cache):
            x, W = cache
            dW = torch.zeros_like(W)
            dW[x] = dout
            return dW
        """,
        "dW[x] = dout",
    ),
    "softmax_loss_divided_by_steps": (
        RNN,
        "temporal_softmax_loss",
        """
        def temporal_softmax_loss(x, y, mask):
            shifted = x - x.max(dim=2, keepdim=True).values
            log_p = shifted - shifted.exp().sum(dim=2, keepdim=True).log()
            m = mask.to(x.dtype)
            count = m.sum()
            loss = -(log_p.gather(2, y[:, :, None])[:, :, 0] * m).sum() / count
            dx = log_p.exp().scatter_add(2, y[:, :, None], -torch.ones_like(x[:, :, :1]))
            return loss, dx * m[:, :, None] / count
        """,
        "divided by the number of steps counted",
    ),
    "softmax_loss_unmasked_dx": (
        RNN,
        "temporal_softmax_loss",
        """
        def temporal_softmax_loss(x, y, mask):
            N = x.shape[0]
            shifted = x - x.max(dim=2, keepdim=True).values
            log_p = shifted - shifted.exp().sum(dim=2, keepdim=True).log()
            loss = -(log_p.gather(2, y[:, :, None])[:, :, 0] * mask.to(x.dtype)).sum() / N
            dx = log_p.exp().scatter_add(2, y[:, :, None], -torch.ones_like(x[:, :, :1]))
            return loss, dx / N
        """,
        "dx is not masked",
    ),
    "lstm_step_forward_pytorch_gate_order": (
        LSTM,
        "lstm_step_forward",
        """
        def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
            H = prev_h.shape[1]
            a = x @ Wx + prev_h @ Wh + b
            i, f = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H : 2 * H])
            g, o = torch.tanh(a[:, 2 * H : 3 * H]), torch.sigmoid(a[:, 3 * H :])
            next_c = f * prev_c + i * g
            next_h = o * torch.tanh(next_c)
            cache = (x, prev_h, prev_c, Wx, Wh, b, i, f, o, g, next_c)
            return next_h, next_c, cache
        """,
        "the gates are read in the order i, f, g, o",
    ),
    "lstm_step_backward_forgets_dnext_c": (
        LSTM,
        "lstm_step_backward",
        """
        def lstm_step_backward(dnext_h, dnext_c, cache):
            x, prev_h, prev_c, Wx, Wh, b, i, f, o, g, next_c = cache
            tc = torch.tanh(next_c)
            dc = dnext_h * o * (1 - tc * tc)
            da = torch.cat([dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * tc * o * (1 - o),
                            dc * i * (1 - g * g)], dim=1)
            return da @ Wx.t(), da @ Wh.t(), dc * f, x.t() @ da, prev_h.t() @ da, da.sum(dim=0)
        """,
        "dnext_c is not added",
    ),
    "lstm_forward_c0_is_h0": (
        LSTM,
        "lstm_forward",
        """
        def lstm_forward(x, h0, Wx, Wh, b):
            N, T, D = x.shape
            h = torch.zeros(N, T, h0.shape[1], dtype=x.dtype, device=x.device)
            caches, prev_h, prev_c = [], h0, h0
            for t in range(T):
                prev_h, prev_c, step_cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
                h[:, t] = prev_h
                caches.append(step_cache)
            return h, caches
        """,
        "c0 is h0",
    ),
    "captioning_counts_the_padding": (
        CAP,
        "CaptioningRNN.loss",
        """
        def loss(self, features, captions):
            p, grads = self.params, {}
            captions_in, captions_out = captions[:, :-1], captions[:, 1:]
            mask = torch.ones_like(captions_out, dtype=torch.bool)
            h0 = features @ p["W_proj"] + p["b_proj"]
            words, embed_cache = word_embedding_forward(captions_in, p["W_embed"])
            pair = (rnn_forward, rnn_backward) if self.cell_type == "rnn" else (lstm_forward, lstm_backward)
            forward, backward = pair
            h, rnn_cache = forward(words, h0, p["Wx"], p["Wh"], p["b"])
            scores, affine_cache = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
            loss, dscores = temporal_softmax_loss(scores, captions_out, mask)
            dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, affine_cache)
            dwords, dh0, grads["Wx"], grads["Wh"], grads["b"] = backward(dh, rnn_cache)
            grads["W_embed"] = word_embedding_backward(dwords, embed_cache)
            grads["W_proj"] = features.t() @ dh0
            grads["b_proj"] = dh0.sum(dim=0)
            return loss, grads
        """,
        "the <NULL> padding is counted",
    ),
}


# bugs some checks of their function cannot see: sampling does not read the mask; a one-step sequence has nothing to
# carry back. They lose those checks' points only, and every check they fail names them.
PARTIAL = {"captioning_counts_the_padding", "rnn_backward_not_carried"}


def planted(tmp_path, file: str, qualname: str, source: str):
    sub = copy_submission(tmp_path / "submission", packages=("a4_rnn",))
    replace_function(sub / file, qualname, source)
    return grade(sub, "a4_rnn", device="cpu", hidden=True, kit=ROOT)


def lost(result) -> dict[str, float]:
    """Points lost per graded unit."""
    out: dict[str, float] = {}
    for c in result.checks:
        out[c.function] = out.get(c.function, 0.0) + c.max_score - c.score
    return {f: round(p, 6) for f, p in out.items() if p > 1e-9}


@pytest.mark.slow
@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_a_classic_bug_loses_exactly_its_functions_points(tmp_path, mutant):
    file, qualname, source, words = MUTANTS[mutant]
    result = planted(tmp_path, file, qualname, source)
    function = qualname.split(".")[0]
    why = [f"{c.id}: {c.output}" for c in result.checks if not c.passed]
    if mutant in PARTIAL:
        assert set(lost(result)) == {function} and 0 < lost(result)[function] < POINTS[function], why
    else:
        assert lost(result) == {function: POINTS[function]}, why
    failed = [c for c in result.checks if not c.passed]
    assert failed and all(words in c.output for c in failed), [c.output for c in failed]


@pytest.mark.slow
def test_a_backward_pass_keeps_its_points_when_its_forward_pass_is_wrong(tmp_path):
    """The forward forgets the bias: its cache holds a wrong next_h, and a right backward computed from that cache
    would disagree with autograd. The backward is given the cache a right forward makes, passes, and says why."""
    file, qualname, source, _ = MUTANTS["rnn_step_forward_no_bias"]
    result = planted(tmp_path, file, qualname, source)
    backward = [c for c in result.checks if c.function == "rnn_step_backward"]
    assert backward and all(c.passed for c in backward)
    assert all("was judged with the cache a right rnn_step_forward makes" in c.output for c in backward)
    assert result.score == pytest.approx(100 - POINTS["rnn_step_forward"])


@pytest.mark.slow
def test_a_forward_pass_keeps_its_points_when_its_backward_pass_is_wrong(tmp_path):
    file, qualname, source, _ = MUTANTS["lstm_step_backward_forgets_dnext_c"]
    result = planted(tmp_path, file, qualname, source)
    assert all(c.passed for c in result.checks if c.function == "lstm_step_forward")
    assert all(c.passed for c in result.checks if c.function == "lstm_forward")
    assert result.score == pytest.approx(100 - POINTS["lstm_step_backward"])


@pytest.mark.slow
def test_a_backward_with_a_wrong_forward_and_its_own_bug_is_told_what_it_was_given(tmp_path):
    """Both wrong: the backward's feedback says it was judged with a right forward's cache, so the problem is its
    own, and never blames the forward."""
    sub = copy_submission(tmp_path / "submission", packages=("a4_rnn",))
    for name in ("rnn_step_forward_no_bias", "rnn_step_backward_no_tanh_derivative"):
        file, qualname, source, _ = MUTANTS[name]
        replace_function(sub / file, qualname, source)
    result = grade(sub, "a4_rnn", device="cpu", hidden=False, kit=ROOT)
    backward = [c for c in result.checks if c.function == "rnn_step_backward"]
    assert backward and not any(c.passed for c in backward)
    assert all(
        "gives wrong outputs on these inputs, so rnn_step_backward was given the cache" in c.output for c in backward
    )
    assert all("the derivative of tanh is missing" in c.output for c in backward)


@pytest.mark.slow
def test_a_forbidden_embedding_reached_through_torch_ops_aten_is_caught(tmp_path):
    result = planted(
        tmp_path,
        RNN,
        "word_embedding_forward",
        """
        def word_embedding_forward(x, W):
            out = torch.ops.aten.embedding(W, x)
            return out, (x, W)
        """,
    )
    failed = [c for c in result.checks if not c.passed]
    assert lost(result) == {"word_embedding_forward": POINTS["word_embedding_forward"]}, [c.output for c in failed]
    assert all("torch.nn.functional.embedding" in c.output or "torch.embedding" in c.output for c in failed)


OWN_LAYOUT = {  # gates read in PyTorch's order (a forward bug) and a cache of the student's own (a dict)
    "lstm_step_forward": """
        def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
            H = prev_h.shape[1]
            a = x @ Wx + prev_h @ Wh + b
            i, f = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H : 2 * H])
            g, o = torch.tanh(a[:, 2 * H : 3 * H]), torch.sigmoid(a[:, 3 * H :])
            next_c = f * prev_c + i * g
            next_h = o * torch.tanh(next_c)
            return next_h, next_c, {"x": x, "h": prev_h, "c": prev_c, "Wx": Wx, "Wh": Wh, "gates": (i, f, g, o)}
        """,
    "lstm_step_backward": """
        def lstm_step_backward(dnext_h, dnext_c, cache):
            i, f, g, o = cache["gates"]
            next_c = f * cache["c"] + i * g
            tc = torch.tanh(next_c)
            dc = dnext_c + dnext_h * o * (1 - tc * tc)
            da = torch.cat([dc * g * i * (1 - i), dc * cache["c"] * f * (1 - f), dc * i * (1 - g * g),
                            dnext_h * tc * o * (1 - o)], dim=1)
            x, h = cache["x"], cache["h"]
            return da @ cache["Wx"].t(), da @ cache["Wh"].t(), dc * f, x.t() @ da, h.t() @ da, da.sum(dim=0)
        """,
}


@pytest.mark.slow
def test_a_backward_reading_its_own_cache_is_judged_against_its_own_forward(tmp_path):
    """A forward with a bug and a cache layout of the student's own: the backward cannot read the cache a right
    forward makes, so it is judged against the numeric derivative of the student's own forward, and keeps its
    points. (lstm_backward's given lines read the kit's layout: with a layout of its own it cannot work.)"""
    sub = copy_submission(tmp_path / "submission", packages=("a4_rnn",))
    for qualname, source in OWN_LAYOUT.items():
        replace_function(sub / LSTM, qualname, source)
    result = grade(sub, "a4_rnn", device="cpu", hidden=True, kit=ROOT)
    checks = [c for c in result.checks if c.function == "lstm_step_backward"]
    assert checks and all(c.passed for c in checks), [c.output for c in checks]
    assert all("against the derivative of your own lstm_step_forward" in c.output for c in checks)
    assert "lstm_step_forward" in lost(result) and "lstm_step_backward" not in lost(result)
