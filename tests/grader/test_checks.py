"""The judging vocabulary (grader.judge.judging, Ctx.expect_*): every message a student can read, both directions.

A Ctx is built against a small stand-in for the runner's Run (no sandbox: these judgements never call one).
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from grader.course.manifest import Manifest, Part
from grader.judge import judging
from grader.judge.checks import CheckFailed, CheckSpec, Ctx, check, collect, variant
from grader.judge.runner import Run
from grader.sandbox.isolation import Reply

PART = Part(
    name="p", title="p", module="demo.a", file="demo/a.py", points=10.0, functions={"f": 6.0, "g": 4.0}, forbidden={}
)


class FakeRun:
    """What Ctx reads of a Run; the file checks (missing, refused, syntax error) are the runner's own."""

    module_for = Run.module_for
    file_of = Run.file_of

    def __init__(
        self,
        *,
        forbid_autograd: bool = False,
        sources: dict | None = None,
        missing=(),
        dataset_name: str = "digits",
        images: tuple | None = None,
    ):
        self.manifest = Manifest(
            name="demo",
            title="demo",
            dir=Path("."),
            parts=[PART],
            files=["demo/a.py"],
            notebooks=[],
            checks=[],
            hidden_checks=[],
            sandbox_paths=[],
            targets={},
            forbid_autograd=forbid_autograd,
        )
        self.staged = SimpleNamespace(sources=dict(sources or {}), missing=list(missing), rejected={}, syntax_errors={})
        self.device, self.timeout_cap, self.cache = "cpu", None, {}
        self.dataset_name, self._name, self._images, self.loads = "none", dataset_name, images, 0

    def cached(self, key, factory):
        if key not in self.cache:
            self.cache[key] = factory()
        return self.cache[key]

    def dataset(self):
        if self.dataset_name == "none":
            self.loads += 1
            self.dataset_name = self._name
        return self._images


def make_ctx(**kw) -> Ctx:
    return Ctx(FakeRun(**kw), CheckSpec(id="demo.f", function="f", body=lambda ctx: None, seed=7))


def failure(call, *args, **kwargs) -> str:
    with pytest.raises(CheckFailed) as info:
        call(*args, **kwargs)
    return str(info.value)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---- expect_tensor: every problem, named mistakes only when proven -------------------------------------------


def test_a_right_tensor_passes_and_a_small_error_within_the_bound_too():
    ctx, e = make_ctx(), randn(4, 5)
    ctx.expect_tensor(e.clone(), e, "out", bound=1e-12)
    ctx.expect_tensor(e * (1 + 1e-9), e, "out", bound=1e-8)


def test_a_wrong_dtype_and_wrong_values_are_both_reported():
    ctx, e = make_ctx(), randn(4, 5)
    text = failure(ctx.expect_tensor, (e + 1).float(), e, "out", bound=1e-8)
    assert text.startswith("out has 2 problems:")
    assert "expected dtype float64, found float32" in text and "relative error" in text


def test_a_wrong_dtype_with_right_values_is_one_problem_judged_at_that_precision():
    ctx, e = make_ctx(), randn(4, 5)
    text = failure(ctx.expect_tensor, e.float(), e, "out", bound=1e-12)
    assert text == "out: expected dtype float64, found float32."


def test_a_wrong_shape_stops_before_the_values_and_a_transpose_is_named_only_when_it_is_one():
    ctx, e = make_ctx(), randn(3, 5)
    assert (
        failure(ctx.expect_tensor, e.t().contiguous(), e, "dists")
        == "dists: expected shape (3, 5), found (5, 3): it is the transpose of the expected result."
    )
    assert failure(ctx.expect_tensor, randn(5, 3, seed=1), e, "dists") == "dists: expected shape (3, 5), found (5, 3)."
    text = failure(ctx.expect_tensor, randn(5, 3, seed=1).float(), e, "dists")
    assert "expected shape (3, 5), found (5, 3)" in text and "expected dtype float64, found float32" in text


def test_a_named_mistake_of_another_shape_is_named_when_the_numbers_prove_it():
    """db summed over the wrong axis has another shape: the shape problem names it, and only where the values match."""
    ctx, dout = make_ctx(), randn(4, 3)
    db, wrong_axis = dout.sum(0), dout.sum(1)  # (3,) and (4,)
    mistakes = {"db sums dout over the wrong axis: sum over the examples (dim 0)": wrong_axis}
    text = failure(ctx.expect_tensor, wrong_axis.clone(), db, "db", bound=1e-10, mistakes=mistakes)
    assert text == (
        "db: expected shape (3,), found (4,). Likely bug: db sums dout over the wrong axis: sum over the examples "
        "(dim 0)."
    )
    other = failure(ctx.expect_tensor, randn(4, seed=3), db, "db", bound=1e-10, mistakes=mistakes)
    assert other == "db: expected shape (3,), found (4,)."  # the same wrong shape, other values: no name
    kept = failure(ctx.expect_tensor, dout.sum(0, keepdim=True), db, "db", bound=1e-10, mistakes=mistakes)
    assert kept == "db: expected shape (3,), found (1, 3)."


def test_a_mistake_shared_by_several_values_is_said_once():
    ctx = make_ctx()
    want = {k: randn(3, 4, seed=i) for i, k in enumerate(("dWx", "dWh", "db"))}
    same = "the gradient is not summed over the time steps"
    got = {k: 3 * v for k, v in want.items()}
    got["db"] = want["db"].clone()
    text = failure(ctx.expect_dict, got, want, "grads", bound=1e-10, mistakes={k: {same: 3 * want[k]} for k in want})
    assert text.count(f"Likely bug: {same}.") == 1, text
    assert text.startswith("grads: 2 of its 3 values are wrong.")
    assert text.endswith(f"grads['dWx'], grads['dWh']: Likely bug: {same}."), text
    assert "grads['dWx']: relative error" in text and "grads['dWh']: relative error" in text


def test_the_device_is_checked_and_the_values_still_compared():
    ctx, e = make_ctx(), randn(3)
    text = failure(ctx.expect_tensor, e * 3, e, "out", device="cuda")
    assert "expected a tensor on cuda, found one on cpu" in text and "relative error" in text
    ctx.expect_tensor(e, e, "out", device=None)


def test_requires_grad_is_a_problem_where_autograd_is_forbidden():
    e = randn(3)
    text = failure(make_ctx(forbid_autograd=True).expect_tensor, e.clone().requires_grad_(), e, "dW")
    assert "requires grad" in text and "by hand" in text
    make_ctx().expect_tensor(e.clone().requires_grad_(), e, "dW")


def test_the_largest_difference_is_shown_with_digits_enough_to_see_it():
    ctx, e = make_ctx(), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    got = e.clone()
    got[1] += 1e-7
    text = failure(ctx.expect_tensor, got, e, "out", bound=1e-10)
    assert "largest difference at index (1,): expected 2, found 2.0000001" in text


@pytest.mark.parametrize(
    "factor, n, named",
    [
        (2.0, None, "exactly 2x the expected ones"),
        (0.5, None, "exactly half the expected ones"),
        (-1.0, None, "the wrong sign"),
        (8.0, 8, "N = 8 times too large"),
        (1 / 8, 8, "N = 8 times too small"),
    ],
)
def test_a_generic_mistake_is_named_when_the_numbers_prove_it(factor, n, named):
    ctx, e = make_ctx(), randn(6, 4)
    assert f"Likely bug: your values {'have' if 'sign' in named else 'are'} {named}" in failure(
        ctx.expect_tensor, e * factor, e, "dW", bound=1e-8, n=n
    )


def test_with_n_equal_to_2_the_factor_is_named_once_as_n():
    ctx, e = make_ctx(), randn(6, 4)
    text = failure(ctx.expect_tensor, e * 2, e, "dW", bound=1e-8, n=2)
    assert "N = 2 times too large" in text and "2x" not in text and "several" not in text


def test_a_transpose_of_a_square_result_is_named_but_not_for_a_symmetric_one():
    ctx, e = make_ctx(), randn(4, 4)
    assert "the transpose of the expected ones" in failure(ctx.expect_tensor, e.t(), e, "w", bound=1e-8)
    sym = e + e.t()
    # a symmetric matrix equals its transpose: a wrong result is not "transposed"
    assert "transpose" not in failure(ctx.expect_tensor, sym + 1, sym, "w", bound=1e-8)


@pytest.mark.parametrize(
    "expected",
    [
        torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),  # one non-zero entry
        torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64),  # one distinct non-zero value, a whole number
        torch.zeros(3, dtype=torch.float64),
    ],
)
def test_no_mistake_is_named_on_a_result_too_plain_to_prove_anything(expected):
    text = failure(
        make_ctx().expect_tensor,
        torch.tensor([2.0, 2.0, 0.0], dtype=torch.float64)
        if expected.any()
        else torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64),
        expected,
        "out",
        bound=1e-8,
    )
    assert "Likely bug" not in text and "several" not in text


def test_a_non_whole_constant_is_evidence_enough():
    e = torch.full((2, 3), 3.14, dtype=torch.float64)
    assert "exactly 2x" in failure(make_ctx().expect_tensor, 2 * e, e, "pi", bound=1e-8)


def test_a_supplied_mistake_is_named_only_when_it_differs_from_the_expected_values():
    ctx, e = make_ctx(), randn(5, 3)
    wrong = e + randn(5, 3, seed=1)
    assert "Likely bug: the regulariser is missing." in failure(
        ctx.expect_tensor, wrong, e, "dW", bound=1e-8, mistakes={"the regulariser is missing": wrong}
    )
    # with reg = 0 "the regulariser is missing" gives the expected values: it cannot explain a wrong result
    text = failure(
        ctx.expect_tensor,
        wrong,
        e,
        "dW",
        bound=1e-8,
        mistakes={"the regulariser is missing": e.clone(), "a shape mismatch": randn(2)},
    )
    assert "Likely bug" not in text


def test_two_mistakes_that_explain_the_output_are_both_said_as_possibilities():
    ctx, e = make_ctx(), randn(5, 3)
    text = failure(ctx.expect_tensor, 2 * e, e, "dW", bound=1e-8, mistakes={"the update is applied twice": 2 * e})
    assert "match several known mistakes" in text and "applied twice" in text and "2x" in text


def test_integer_results_are_exact_and_name_a_proven_mistake():
    ctx = make_ctx()
    want = torch.tensor([3, 1, 4, 1, 5])
    assert (
        failure(ctx.expect_tensor, torch.tensor([3, 1, 4, 1, 6]), want, "labels")
        == "labels: 1 of 5 entries are wrong; e.g. at index (4,) expected 5, found 6."
    )
    off = want - 1
    assert "Likely bug: labels are off by one." in failure(
        ctx.expect_tensor, off, want, "labels", mistakes={"labels are off by one": off}
    )
    # a result of zeros and ones proves nothing
    assert "Likely bug" not in failure(
        ctx.expect_tensor, torch.tensor([1, 0]), torch.tensor([0, 1]), "m", mistakes={"inverted": torch.tensor([1, 0])}
    )


def test_nan_entries_are_counted():
    e = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assert (
        failure(make_ctx().expect_tensor, torch.tensor([1.0, math.nan, math.inf], dtype=torch.float64), e, "out")
        == "out: 2 of 3 entries are nan or inf; every expected value is finite."
    )


def test_expected_infinities_must_match_exactly():
    e = torch.tensor([1.0, -math.inf], dtype=torch.float64)
    make_ctx().expect_tensor(e.clone(), e, "out")
    assert "relative error inf" in failure(
        make_ctx().expect_tensor, torch.tensor([1.0, 0.0], dtype=torch.float64), e, "out"
    )


def test_float32_precision_in_a_float64_computation_gets_a_hint():
    ctx, x = make_ctx(), randn(6, 5)
    e = x * 0.1
    got = x * torch.tensor(0.1).item()  # 0.1 rounded to float32: 0.10000000149...
    text = failure(ctx.expect_tensor, got, e, "out", bound=1e-10)
    assert "float32 precision" in text and "torch.tensor(0.5) without dtype" in text
    rounded = e.float().double()  # an intermediate computed in float32
    assert "float32 precision" in failure(ctx.expect_tensor, rounded, e, "out", bound=1e-10)


def test_float32_hint_where_small_entries_come_from_large_terms():
    """Batch normalisation's dx by the long chain rule, with 1/N as a float32 constant: its entries sum to zero
    over the batch, so small entries carry the rounding of large terms. Every seed that fails the bound gets the
    hint (a student saw "relative error 1.3e-08 exceeds the bound 1e-08" and nothing else)."""
    N, f64 = 12, torch.float64
    inv_n = torch.tensor(1.0 / N)  # float32: 0.0833333358...

    def dx(x, dout, gamma, inv):
        xc = x - x.mean(0)
        std = torch.sqrt((xc**2).mean(0) + 1e-5)
        dxh = dout * gamma
        dvar = (dxh * xc * -0.5 * std**-3).sum(0)
        dmu = (-dxh / std).sum(0) + dvar * (-2 * xc).sum(0) * inv
        return dxh / std + dvar * 2 * xc * inv + dmu * inv

    failed = 0
    for seed in range(12):
        g = torch.Generator().manual_seed(seed)
        x = 4 * torch.randn(N, 5, generator=g, dtype=f64) + 3 * torch.randn(5, generator=g, dtype=f64)
        gamma, dout = 1 + 0.3 * torch.randn(5, generator=g, dtype=f64), torch.randn(N, 5, generator=g, dtype=f64)
        want, got = dx(x, dout, gamma, 1.0 / N), dx(x, dout, gamma, inv_n)
        if judging.rel_error(got, want) > 1e-8:
            failed += 1
            assert "float32 precision" in failure(make_ctx().expect_tensor, got, want, "dx", bound=1e-8), seed
    assert failed >= 3  # the case is real: several seeds fail the backward bound


def test_no_float32_hint_for_a_real_error_or_another_dtype():
    ctx, e = make_ctx(), randn(6, 5)
    assert "float32" not in failure(ctx.expect_tensor, e * 1.001, e, "out", bound=1e-10)
    bumped = e.clone()
    bumped[0, 0] *= 1 + 1e-4  # one entry far off, the rest exact: not a precision problem
    assert "float32" not in failure(ctx.expect_tensor, bumped, e, "out", bound=1e-10)
    assert "float32 precision" not in failure(ctx.expect_tensor, e.float() * 1.01, e.float(), "out", bound=1e-6)


def test_the_hint_comes_last():
    e = randn(3)
    assert failure(make_ctx().expect_tensor, e + 1, e, "out", hint="Add b.").endswith("). Add b.")


def test_a_non_tensor_is_named():
    assert failure(make_ctx().expect_tensor, [1.0], randn(1), "out") == "out: expected a Tensor, found list."


# ---- layout, numbers, losses, dicts ---------------------------------------------------------------------------


def test_expect_layout_reports_shape_dtype_and_device_together():
    ctx = make_ctx()
    ctx.expect_layout(torch.zeros(2, 3, dtype=torch.float64), (2, 3), torch.float64, "W")
    text = failure(ctx.expect_layout, torch.zeros(3, 2), (2, 3), torch.float64, "W", hint="W is (D, C).")
    assert text == (
        "W has 2 problems:\n  - expected shape (2, 3), found (3, 2).\n"
        "  - expected dtype float64, found float32. W is (D, C)."
    )


@pytest.mark.parametrize("value, ok", [(2, 2.0), (0.5, 0.5), (torch.tensor(1.5), 1.5), (torch.tensor([2.5]), 2.5)])
def test_expect_float_takes_a_number_or_a_one_number_tensor(value, ok):
    assert make_ctx().expect_float(value, "lr") == ok


@pytest.mark.parametrize(
    "value, message",
    [
        (True, "lr: expected a number, found bool True."),
        ("0.1", "lr: expected a number, found str '0.1'."),
        (torch.ones(2), "lr: expected a number, found a tensor of shape (2,)."),
        (math.nan, "lr: expected a finite number, found nan."),
        (torch.tensor(math.inf), "lr: expected a finite number, found inf."),
    ],
)
def test_expect_float_refuses_other_values(value, message):
    assert failure(make_ctx().expect_float, value, "lr") == message


def test_expect_float_positive():
    assert failure(make_ctx().expect_float, 0.0, "lr", positive=True) == "lr: expected a positive number, found 0."
    assert make_ctx().expect_float(1e-3, "lr", positive=True) == 1e-3


def test_expect_loss_wants_a_0_dim_tensor_and_returns_its_value():
    ctx, want = make_ctx(), torch.tensor(2.302585, dtype=torch.float64)
    assert ctx.expect_loss(want.clone(), want, "the loss", bound=1e-8) == pytest.approx(2.302585)
    assert "found a Python float (2.30259); return the loss as a tensor" in failure(
        ctx.expect_loss, 2.302585, want, "the loss", bound=1e-8
    )
    assert "found one of shape (1,) (index its single element" in failure(
        ctx.expect_loss, want.reshape(1), want, "the loss", bound=1e-8
    )
    assert "found one of shape (4,) (reduce over every example" in failure(
        ctx.expect_loss, want.repeat(4), want, "the loss", bound=1e-8
    )
    assert "expected dtype float64, found float32" in failure(
        ctx.expect_loss, want.float(), want, "the loss", bound=1e-8
    )


def test_expect_loss_names_a_proven_mistake_on_one_number():
    ctx, want = make_ctx(), torch.tensor(2.302585, dtype=torch.float64)
    text = failure(ctx.expect_loss, want * 2, want, "the loss", bound=1e-8)
    assert text.startswith("the loss: expected 2.30259, found 4.60517 (relative error 3.3e-01")
    assert "exactly 2x" in text
    no_reg = torch.tensor(1.9, dtype=torch.float64)
    assert "Likely bug: the regulariser is missing." in failure(
        ctx.expect_loss, no_reg, want, "the loss", bound=1e-8, mistakes={"the regulariser is missing": 1.9}
    )


def test_expect_dict_reports_keys_then_every_wrong_value():
    ctx = make_ctx()
    want = {"W1": randn(3, 2), "b1": randn(2, seed=1)}
    ctx.expect_dict({k: v.clone() for k, v in want.items()}, want, "grads")
    assert (
        failure(ctx.expect_dict, {"W1": want["W1"], "W2": want["b1"]}, want, "grads")
        == "grads: expected the keys ['W1', 'b1']; missing ['b1'], unexpected ['W2']."
    )
    assert (
        failure(ctx.expect_dict, [1], want, "grads")
        == "grads: expected a dict with keys ['W1', 'b1'], found a list of 1 items."
    )
    text = failure(
        ctx.expect_dict,
        {"W1": want["W1"] * 2, "b1": want["b1"].float()},
        want,
        "grads",
        bound=1e-8,
        hints={"b1": "b1 is (H,)."},
    )
    assert text.startswith("grads: 2 of its 2 values are wrong.\n")
    assert "grads['W1']: relative error" in text and "exactly 2x" in text
    assert "grads['b1']: expected dtype float64, found float32. b1 is (H,)." in text


def test_expect_dict_per_key_mistakes_and_a_single_wrong_value():
    ctx = make_ctx()
    want = {"W1": randn(3, 2), "b1": randn(2, seed=1)}
    missing_reg = want["W1"] + randn(3, 2, seed=2)
    text = failure(
        ctx.expect_dict,
        {"W1": missing_reg, "b1": want["b1"]},
        want,
        "grads",
        bound=1e-8,
        mistakes={"W1": {"missing 2 * reg * W1": missing_reg}},
    )
    assert text.startswith("grads['W1']: relative error") and "Likely bug: missing 2 * reg * W1." in text


def test_expect_close_names_a_mistake_on_a_number():
    ctx = make_ctx()
    ctx.expect_close(0.3, 0.3, "acc")
    text = failure(ctx.expect_close, 0.6, 0.3, "acc", bound=1e-8)
    assert text.startswith("acc: expected 0.3, found 0.6") and "exactly 2x" in text


# ---- inputs unchanged ------------------------------------------------------------------------------------------


def reply(*args) -> Reply:
    return Reply(value=None, seconds=0.0, forbidden_hits=[], aliases=[], args=list(args))


def test_expect_unchanged_passes_untouched_inputs_and_names_a_modified_one():
    ctx = make_ctx()
    x, w, p = randn(3), randn(2, seed=1), {"W1": randn(2, 2), "b1": randn(2)}
    ctx.expect_unchanged(
        [x, w, p], reply(x.clone(), w.clone(), {k: v.clone() for k, v in p.items()}), ["x", "w", "params"]
    )
    assert failure(ctx.expect_unchanged, [x, w], reply(x.clone(), w * 2), ["x", "w"]).startswith(
        "f modified its input w; it must leave its inputs unchanged"
    )
    changed = {"W1": p["W1"].clone(), "b1": p["b1"] + 1}
    assert "f modified its input params (params['b1'] changed)" in failure(
        ctx.expect_unchanged, [p], reply(changed), ["params"]
    )
    nan = torch.tensor([math.nan, 1.0])
    ctx.expect_unchanged([nan], reply(nan.clone()), ["x"])  # nan stays nan: unchanged
    assert "modified its input x" in failure(ctx.expect_unchanged, [x], reply(x.float()), ["x"])  # a dtype change


def test_expect_unchanged_needs_the_arguments_back():
    with pytest.raises(ValueError, match="return_args=True"):
        make_ctx().expect_unchanged([randn(2)], Reply(None, 0.0, [], []), ["x"])


# ---- the run, as checks see it ---------------------------------------------------------------------------------


def test_cache_computes_once_per_run():
    run = FakeRun()
    a, b = (Ctx(run, CheckSpec(id=i, function="f", body=lambda ctx: None)) for i in ("x", "y"))
    calls = []
    assert a.cache("k", lambda: calls.append(1) or [1]) is b.cache("k", lambda: calls.append(2) or [2])
    assert calls == [1]
    assert make_ctx().cache("k", lambda: "fresh") == "fresh"  # another run: its own cache


def test_dataset_name_loads_the_data_set_and_scale_falls_back_to_cifar10():
    ctx = make_ctx(dataset_name="digits")
    assert ctx.dataset_name == "digits" and ctx.run.loads == 1
    assert ctx.scale({"digits": 3, "cifar10": 9}) == 3
    assert make_ctx(dataset_name="other").scale({"digits": 3, "cifar10": 9}) == 9


def test_source_and_definition_read_the_submitted_file():
    ctx = make_ctx(sources={"demo/a.py": "def f(x):\n    return x\n\nclass K:\n    def g(self):\n        pass\n"})
    assert ctx.source().startswith("def f(x)") and ctx.source("helper_not_graded") == ctx.source("g")
    assert ctx.definition("f").name == "f" and ctx.definition("K.g").name == "g"
    assert ctx.definition("missing") is None


def test_source_of_a_missing_file_fails_the_check_as_usual():
    assert (
        failure(make_ctx(missing=["demo/a.py"]).source)
        == "demo/a.py is missing from your submission, so f could not be graded."
    )


# ---- module functions ---------------------------------------------------------------------------------------


def test_cpu64_copies_into_float64_on_the_cpu_recursively():
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    out = judging.cpu64({"a": [x, (torch.tensor([1, 2]), 3)], "b": "text"})
    a = out["a"][0]
    assert a.dtype == torch.float64 and not a.requires_grad and out["b"] == "text" and out["a"][1][1] == 3
    assert out["a"][1][0].dtype == torch.float64 and isinstance(out["a"][1], tuple)
    a += 1
    assert x.detach().tolist() == [1.0, 1.0]  # a copy: changing it leaves the original as it was


def test_rel_error_is_the_course_definition_for_tensors_and_numbers():
    assert judging.rel_error(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0], dtype=torch.float64)) == 0.0
    assert judging.rel_error(1.0, 3.0) == pytest.approx(0.5)
    assert judging.rel_error(torch.zeros(0), torch.zeros(0)) == 0.0


def test_one_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with judging.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_course_data_preprocesses_splits_and_caches():
    g = torch.Generator().manual_seed(0)
    images = (
        torch.randint(0, 256, (10, 3, 4, 4), generator=g, dtype=torch.uint8),
        torch.arange(10),
        torch.randint(0, 256, (5, 3, 4, 4), generator=g, dtype=torch.uint8),
        torch.arange(5),
        None,
    )
    ctx = make_ctx(images=images)
    data = judging.course_data(ctx)
    assert data["X_train"].shape == (8, 48) and data["X_val"].shape == (2, 48) and data["X_test"].shape == (5, 48)
    assert data["X_train"].dtype == torch.float32 and data["y_val"].tolist() == [8, 9]
    full = torch.cat([data["X_train"], data["X_val"]]).reshape(10, 3, 16)
    assert full.mean(dim=(0, 2)).abs().max() < 1e-6  # the training images' per-channel mean is removed
    assert judging.course_data(ctx) is data
    biased = judging.course_data(ctx, bias_trick=True, pool=2)
    assert biased["X_train"].shape == (8, 13) and torch.all(biased["X_test"][:, -1] == 1)
    assert judging.course_data(ctx, flatten=False)["X_train"].shape == (8, 3, 4, 4)


def test_describe_value_and_fmt_shape():
    assert judging.fmt_shape((3,)) == "(3,)" and judging.fmt_shape(()) == "()"
    assert judging.describe_value({"a": 1}) == "a dict with keys ['a']"
    assert judging.describe_value(torch.zeros(2, 0, 3)) == "a tensor of shape (2, 0, 3)"


# ---- variants --------------------------------------------------------------------------------------------------


@check("demo.f.basic", function="f", dtype="float64")
def _basic(ctx, dtype):
    """f works"""


public_float32 = variant(_basic, "float32", hidden=False, dtype="float32")
hidden_big = variant(_basic, "big", dtype="float64")


def test_a_public_variant_has_its_own_id_and_seed_and_is_visible():
    assert public_float32.id == "demo.f.basic.float32" and not public_float32.hidden
    assert public_float32.visibility == "visible" and public_float32.params == {"dtype": "float32"}
    assert public_float32.seed != _basic.__grader_check__.seed
    assert hidden_big.hidden and hidden_big.visibility == "after_published"
    with pytest.raises(ValueError, match="public variant is visible"):
        variant(_basic, "x", hidden=False, visibility="after_published")
    import sys

    ids = [s.id for s in collect(sys.modules[__name__])]
    assert ids == ["demo.f.basic", "demo.f.basic.float32", "demo.f.basic.big"]
