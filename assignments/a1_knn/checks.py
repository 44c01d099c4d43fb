"""Public checks for A1. Each judges the student's function against an oracle computed here, in the judge,
with PyTorch's own ops in float64. Hidden variants (other seeds,
shapes, edge cases) live in hidden.py.

Nothing here imports the a1_knn package: the oracles are independent re-statements of the contracts in a1_knn's
docstrings. Test labels of the grading data set stay in the judge; only images and training labels enter the
sandbox. A composite (KnnClassifier, knn_cross_validate) is judged by plain calls: when it fails because a
building block it calls is broken, the grader judges it again with the course's block (see [parts.blocks]).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import Any

import torch

from grader.checks import CheckFailed, check
from grader.judge.staticscan import LOOP_NODES, find_function, helpers, loop_sites_when
from grader.judging import cpu64, fmt_shape

DEFAULT_K_CHOICES = [1, 3, 5, 8, 10, 12, 15, 20, 50, 100]

# ---- oracles in float64 on the CPU, and the known mistakes ---------------------------------------


def sq_distances(x_train: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (num_train, num_test), in float64 on the CPU."""
    a, b = cpu64(x_train).flatten(1), cpu64(x_test).flatten(1)
    return torch.cdist(a, b) ** 2


def vote(
    dists: torch.Tensor, y_train: torch.Tensor, k: int, *, largest_label_on_tie: bool = False, farthest: bool = False
) -> torch.Tensor:
    """Majority vote of the k nearest (num_test,); a tie goes to the smallest label. The keyword options
    give the votes of two known mistakes (ties to the largest label, the k farthest neighbours)."""
    idx = cpu64(dists).topk(k, dim=0, largest=farthest).indices  # (k, num_test)
    labels = y_train.cpu()[idx]  # (k, num_test)
    num_classes = int(y_train.max()) + 1
    counts = torch.zeros(num_classes, dists.shape[1], dtype=torch.int64)  # (C, num_test)
    counts.scatter_add_(0, labels, torch.ones_like(labels))
    if largest_label_on_tie:
        return num_classes - 1 - counts.flip(0).argmax(dim=0)
    return counts.argmax(dim=0)


def cross_validate(
    x: torch.Tensor,
    y: torch.Tensor,
    num_folds: int,
    k_choices: list[int],
    *,
    split: Callable = torch.chunk,
    leak: bool = False,
) -> dict[int, list[float]]:
    """{k: [accuracy in percent on fold i]}: folds split in order (torch.chunk), the others train.
    `split`/`leak` give known mistakes (other fold boundaries; training on the held-out fold too)."""
    x_folds, y_folds = split(x.cpu(), num_folds), split(y.cpu(), num_folds)
    out: dict[int, list[float]] = {k: [] for k in k_choices}
    for i in range(len(x_folds)):
        x_rest = torch.cat([f for j, f in enumerate(x_folds) if j != i or leak])
        y_rest = torch.cat([f for j, f in enumerate(y_folds) if j != i or leak])
        d = sq_distances(x_rest, x_folds[i])  # (num_rest, num_val)
        for k in k_choices:
            correct = int((vote(d, y_rest, k) == y_folds[i]).sum())
            out[k].append(100.0 * correct / y_folds[i].shape[0])
    return out


def best_k(k_to_accuracies: dict[int, list[float]]) -> int:
    """The k of highest mean accuracy; the smallest such k on a tie."""
    means = {k: sum(v) / len(v) for k, v in k_to_accuracies.items()}
    top = max(means.values())
    return min(k for k, m in means.items() if m == top)


def clusters(
    ctx, n: int, shape: tuple[int, ...], num_classes: int, dtype: torch.dtype, spread: float = 1.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """n points around num_classes random centres (labels int64), so k-NN has something to learn."""
    centres = ctx.randn(num_classes, *shape, dtype=torch.float64)
    y = ctx.randint(0, num_classes, (n,))
    x = centres[y] + ctx.randn(n, *shape, dtype=torch.float64, scale=spread)
    return x.to(dtype), y


def proven(mistakes: dict[str, torch.Tensor], expected: torch.Tensor) -> dict[str, torch.Tensor]:
    """The known mistakes that differ from the expected result in more than one entry: a mistake is named only
    where the numbers prove it, and one differing entry can be a coincidence."""
    return {
        d: m for d, m in mistakes.items() if m.shape == expected.shape and int((cpu64(m) != cpu64(expected)).sum()) >= 2
    }


# ---- judging helpers ----------------------------------------------------------------------------


def _short(t: torch.Tensor) -> str:
    return str(t.tolist()) if t.numel() <= 12 else f"a tensor of shape {fmt_shape(t.shape)}"


def calls(ctx, function: str, inputs: list[tuple]) -> list[Any]:
    """`function(*args)` for each args of `inputs`: each result, or the CheckFailed its call raised (the first
    call's failure is raised at once: then nothing was judged yet)."""
    out: list[Any] = []
    for args in inputs:
        try:
            out.append(ctx.call(function, *args))
        except CheckFailed as e:
            if not out:
                raise
            out.append(e)
    return out


def judge_ints(ctx, cases: list[tuple[str, Any, int]], mistakes: dict[str, list[int]] | None = None) -> None:
    """Each case (name, what the student returned, the right int) must be a Python int equal to the right one. A
    mistake (description -> the value it gives in each case) is named only when it explains every answer and
    differs from the right one in at least two cases: one case alone can be a coincidence of that input."""
    problems = []
    for name, got, want in cases:
        if isinstance(got, CheckFailed):
            problems.append(f"{name}: {got}")
        elif isinstance(got, torch.Tensor):
            problems.append(
                f"{name}: expected a Python int, found a tensor ({_short(got)}); convert it with int(...) or .item()."
            )
        elif isinstance(got, bool) or not isinstance(got, int):
            problems.append(f"{name}: expected a Python int, found {type(got).__name__} ({got!r}).")
        elif got != want:
            problems.append(f"{name}: expected {want}, found {got}.")
    if not problems:
        return
    answers = [got for _, got, _ in cases]
    wants = [want for _, _, want in cases]
    why = [
        d
        for d, values in (mistakes or {}).items()
        if all(isinstance(a, CheckFailed) or a == v for a, v in zip(answers, values))
        and sum(not isinstance(a, CheckFailed) and v != w for a, v, w in zip(answers, values, wants)) >= 2
    ]
    text = (
        problems[0]
        if len(problems) == 1
        else f"{len(problems)} of {len(cases)} answers are wrong:\n" + "\n".join(f"  - {p}" for p in problems)
    )
    ctx.fail(text + (f"\nLikely bug: {why[0]}." if why else ""), mistakes=why[:1])


def expect_in_place(
    ctx, reply, expected: torch.Tensor, function: str, mistakes: dict[str, torch.Tensor] | None = None
) -> None:
    """The call modified x (argument 0) in place to `expected` and returned that same object (the contract of
    mutate_tensor and slice_assignment_practice)."""
    after = reply.args[0]
    if reply.aliases != [0]:
        if isinstance(after, torch.Tensor) and torch.equal(after.cpu(), expected.cpu()):
            ctx.fail(f"{function} modified x correctly but returned another object; return x itself.")
        if (
            isinstance(reply.value, torch.Tensor)
            and reply.value.shape == expected.shape
            and torch.equal(reply.value.cpu(), expected.cpu())
        ):
            ctx.fail(
                f"{function} returned the right values in a new tensor, but x itself was not modified; "
                "write into x in place (no clone or copy) and return it."
            )
        ctx.fail(
            f"{function} must modify x in place and return x itself; it returned "
            f"{type(reply.value).__name__ if not isinstance(reply.value, torch.Tensor) else 'another tensor'}."
        )
    ctx.expect_tensor(reply.value, expected, "x after the call", bound=0.0, mistakes=proven(mistakes or {}, expected))


# ---- reading the student's code --------------------------------------------------------------------


def code_of(ctx, function: str) -> tuple[ast.Module | None, ast.AST | None]:
    """(the submitted file's tree, the definition of `function` in it); (None, None) without a file."""
    src = ctx.source(function)
    if src is None:
        return None, None
    tree = ast.parse(src)
    return tree, find_function(tree, function)


def _raises_not_implemented(fn: ast.AST) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                return True
    return False


def _strings(node: ast.AST, names: dict[str, set[str]]) -> set[str]:
    """String constants in `node`, following plain names to what the function assigned them."""
    out: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.add(n.value)
        elif isinstance(n, ast.Name) and n.id in names:
            out |= names[n.id]
    return out


def device_moves(fns: list[ast.AST]) -> tuple[bool, bool, bool]:
    """(moves to CUDA, moves back to the CPU, multiplies) as read from a function's code and its helpers'."""
    names: dict[str, set[str]] = {}
    for fn in fns:
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        names.setdefault(t.id, set()).update(_strings(node.value, {}))
    to_cuda = to_cpu = product = False
    for node in (n for fn in fns for n in ast.walk(fn)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            product = True
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        attr = node.func.attr
        if attr in ("mm", "matmul", "bmm", "einsum", "tensordot", "addmm", "inner", "dot", "mv"):
            product = True
        if attr == "cuda":
            to_cuda = True
        elif attr == "cpu":
            to_cpu = True
        elif attr == "to":
            consts = set()
            for a in [*node.args, *(k.value for k in node.keywords)]:
                consts |= _strings(a, names)
            if any(c.startswith("cuda") for c in consts):
                to_cuda = True
            else:  # .to("cpu"), .to(x.device), .to(device) ...: a move back
                to_cpu = True
    return to_cuda, to_cpu, product


def where(sites: list[tuple[int, str]], function: str) -> str:
    """`line 12` / `line 5 in _helper, which f calls` for each (line, function) of `sites`."""
    return ", ".join(f"line {n}" if fn == function else f"line {n} in {fn}, which {function} calls" for n, fn in sites)


# ---- warm-up --------------------------------------------------------------------------------------


@check("a1.warmup.create_sample_tensor", function="create_sample_tensor")
def create_sample_tensor(ctx):
    """create_sample_tensor returns the (3, 2) sample tensor"""
    expected = torch.zeros(3, 2, dtype=torch.float32)
    expected[0, 1], expected[1, 0] = 10, 100
    ctx.expect_tensor(
        ctx.call("create_sample_tensor"),
        expected,
        "the sample tensor",
        bound=0.0,
        device="cpu",
        mistakes={
            "10 and 100 are swapped: x[0, 1] is 10 and x[1, 0] is 100": torch.tensor(
                [[0.0, 100.0], [10.0, 0.0], [0.0, 0.0]]
            )
        },
    )


@check("a1.warmup.mutate_tensor", function="mutate_tensor", shape=(4, 5), num_writes=6, dtype=torch.float32)
def mutate_tensor(ctx, shape, num_writes, dtype):
    """mutate_tensor writes into x in place; later duplicates win"""
    M, N = shape
    if dtype.is_floating_point:
        x = ctx.randn(M, N, dtype=dtype)
        values = [float(v) for v in ctx.randint(-9, 10, (num_writes,)).cpu() + 0.5]
    else:
        x = ctx.randint(-9, 10, (M, N), dtype=dtype)
        values = [int(v) for v in ctx.randint(20, 40, (num_writes,)).cpu()]
    rows, cols = ctx.randint(0, M, (num_writes,)).cpu().tolist(), ctx.randint(0, N, (num_writes,)).cpu().tolist()
    indices = [(i, j) for i, j in zip(rows, cols)]
    if num_writes >= 2:  # the last write repeats the first position with another value: the later wins
        indices[-1] = indices[0]
    expected, first_wins = x.clone().cpu(), x.clone().cpu()
    for (i, j), v in zip(indices, values):
        expected[i, j] = v
    for (i, j), v in reversed(list(zip(indices, values))):
        first_wins[i, j] = v
    reply = ctx.invoke("mutate_tensor", x, indices, values, return_args=True)
    mistakes = (
        {}
        if torch.equal(expected, first_wins)
        else {f"position {indices[0]} appears twice; the later value ({values[-1]}) must win": first_wins}
    )
    expect_in_place(ctx, reply, expected, "mutate_tensor", mistakes)


@check("a1.warmup.count_tensor_elements", function="count_tensor_elements", shapes=((3, 4, 5), (7,), (2, 0, 3), ()))
def count_tensor_elements(ctx, shapes):
    """count_tensor_elements returns the element count as an int"""
    answers = calls(ctx, "count_tensor_elements", [(torch.zeros(s, device=ctx.device),) for s in shapes])
    judge_ints(
        ctx,
        [(f"the count for a tensor of shape {fmt_shape(s)}", got, math.prod(s)) for s, got in zip(shapes, answers)],
        mistakes={
            "you returned the number of dimensions": [len(s) for s in shapes],
            "you returned the size of the first dimension only": [s[0] if s else None for s in shapes],
        },
    )


@check("a1.warmup.create_tensor_of_pi", function="create_tensor_of_pi", sizes=((4, 5), (1, 1), (1, 7)))
def create_tensor_of_pi(ctx, sizes):
    """create_tensor_of_pi returns (M, N) float32 filled with 3.14"""
    for M, N in sizes:
        ctx.expect_tensor(
            ctx.call("create_tensor_of_pi", M, N),
            torch.full((M, N), 3.14),
            f"create_tensor_of_pi({M}, {N})",
            bound=1e-7,
            dtype=torch.float32,
            device="cpu",
            hint="Every entry must be 3.14.",
        )


@check("a1.warmup.multiples_of_ten", function="multiples_of_ten", ranges=((5, 25), (10, 30), (-25, 5), (5, 9)))
def multiples_of_ten(ctx, ranges):
    """multiples_of_ten returns the float64 multiples of ten in [start, stop]"""
    for start, stop in ranges:
        want = torch.tensor([float(m) for m in range(start, stop + 1) if m % 10 == 0], dtype=torch.float64)
        name = f"multiples_of_ten({start}, {stop})"
        got = ctx.call("multiples_of_ten", start, stop)
        ctx.expect_type(got, torch.Tensor, name)
        if tuple(got.shape) != tuple(want.shape):
            found = _short(got)
            hint = (
                "Both start and stop are included."
                if want.numel()
                else "When there is no multiple of ten, return an empty tensor of shape (0,)."
            )
            ctx.fail(
                f"{name}: expected {want.tolist()} (shape {fmt_shape(want.shape)}), found {found} "
                f"(shape {fmt_shape(got.shape)}). {hint}"
            )
        ctx.expect_tensor(
            got,
            want,
            name,
            bound=0.0,
            dtype=torch.float64,
            device="cpu",
            hint=f"Expected {want.tolist()}." + ("" if want.numel() else " An empty result must be float64 too."),
        )


@check("a1.warmup.slice_indexing_practice", function="slice_indexing_practice", shape=(5, 7), dtype=torch.float64)
def slice_indexing_practice(ctx, shape, dtype):
    """slice_indexing_practice returns the four slices"""
    M, N = shape
    x = ctx.randn(M, N, dtype=dtype) if dtype.is_floating_point else ctx.randint(-50, 50, (M, N), dtype=dtype)
    reply = ctx.invoke("slice_indexing_practice", x, return_args=True)
    ctx.expect_unchanged([x], reply, ["x"])
    out = reply.value
    ctx.expect_type(out, (tuple, list), "the result of slice_indexing_practice")
    ctx.expect(len(out) == 4, f"slice_indexing_practice must return 4 tensors, found {len(out)}.")
    xc = x.cpu()
    wanted = [
        ("last_row", xc[-1], "The last row is 1-D: index the row with a single integer (x[-1])."),
        ("third_col", xc[:, 2:3], "The third column stays 2-D, shape (M, 1): slice it (x[:, 2:3])."),
        ("first_two_rows_three_cols", xc[:2, :3], "Take rows 0-1 and columns 0-2."),
        ("even_rows_odd_cols", xc[::2, 1::2], "Rows 0, 2, 4, ... and, within them, columns 1, 3, 5, ..."),
    ]
    for got, (name, want, hint) in zip(out, wanted):
        ctx.expect_tensor(got, want.to(ctx.device), name, bound=0.0, hint=hint)


SLICE_PATTERN = [[0, 1, 2, 2, 2, 2], [0, 1, 2, 2, 2, 2], [3, 4, 3, 4, 5, 5], [3, 4, 3, 4, 5, 5]]


@check("a1.warmup.slice_assignment_practice", function="slice_assignment_practice", shape=(6, 8), dtype=torch.float32)
def slice_assignment_practice(ctx, shape, dtype):
    """slice_assignment_practice writes the 4x6 pattern into x in place"""
    M, N = shape
    x = ctx.randint(10, 99, (M, N), dtype=dtype)
    expected = x.clone().cpu()
    expected[:4, :6] = torch.tensor(SLICE_PATTERN, dtype=dtype)
    reply = ctx.invoke("slice_assignment_practice", x, return_args=True)
    problems = []
    try:
        expect_in_place(ctx, reply, expected.to(ctx.device), "slice_assignment_practice")
    except CheckFailed as e:
        problems.append(str(e))
    tree, fn = code_of(ctx, "slice_assignment_practice")
    if fn is not None:  # the assignments it makes, in its own lines and in the helpers it calls
        bodies = [("slice_assignment_practice", fn), *helpers(tree, fn)]
        assigns = [
            (n.lineno, who, n)
            for who, body in bodies
            for n in ast.walk(body)
            if (isinstance(n, ast.Assign) and any(isinstance(t, ast.Subscript) for t in n.targets))
            or (isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Subscript))
        ]
        looped = [
            (line, who)
            for line, who, n in assigns
            if any(
                n in set(ast.walk(loop))
                for _, body in bodies
                for loop in ast.walk(body)
                if isinstance(loop, LOOP_NODES)
            )
        ]
        if looped:
            problems.append(
                f"slice_assignment_practice assigns inside a loop "
                f"({where(looped[:1], 'slice_assignment_practice')}); use at most 6 slice assignments "
                "and no loop."
            )
        elif len(assigns) > 6:
            problems.append(
                f"slice_assignment_practice makes {len(assigns)} slice assignments "
                f"({where(sorted((line, who) for line, who, _ in assigns), 'slice_assignment_practice')}); "
                "at most 6 are allowed. Strided slices such as x[2:4, 0:4:2] set several columns at once."
            )
    if problems:
        ctx.fail("\n".join(problems))


@check("a1.warmup.shuffle_cols", function="shuffle_cols", shape=(5, 6), dtype=torch.float64)
def shuffle_cols(ctx, shape, dtype):
    """shuffle_cols returns columns 0, 0, 2, 1 of x"""
    M, N = shape
    x = ctx.randn(M, N, dtype=dtype) if dtype.is_floating_point else ctx.randint(-50, 50, (M, N), dtype=dtype)
    reply = ctx.invoke("shuffle_cols", x, return_args=True)
    ctx.expect_unchanged([x], reply, ["x"])
    xc = x.cpu()
    want = xc[:, [0, 0, 2, 1]]
    ctx.expect_tensor(
        reply.value,
        want.to(ctx.device),
        "the shuffled columns",
        bound=0.0,
        hint="The output is (M, 4): columns 0, 0, 2, 1 of x, in that order.",
        mistakes=proven({"the order is columns 0, 0, 2, 1": xc[:, [0, 0, 1, 2]]}, want),
    )


@check("a1.warmup.reverse_rows", function="reverse_rows", shape=(5, 4), dtype=torch.float64)
def reverse_rows(ctx, shape, dtype):
    """reverse_rows returns the rows of x in reverse order"""
    M, N = shape
    x = ctx.randn(M, N, dtype=dtype) if dtype.is_floating_point else ctx.randint(-50, 50, (M, N), dtype=dtype)
    reply = ctx.invoke("reverse_rows", x, return_args=True)
    ctx.expect_unchanged([x], reply, ["x"])
    xc = x.cpu()
    ctx.expect_tensor(
        reply.value,
        xc.flip(0).to(ctx.device),
        "the reversed rows",
        bound=0.0,
        mistakes=proven(
            {
                "you reversed the columns; reverse the order of the rows": xc.flip(1),
                "you reversed both rows and columns": xc.flip(0, 1),
            },
            xc.flip(0),
        ),
    )


@check("a1.warmup.take_one_elem_per_col", function="take_one_elem_per_col", shape=(5, 4), dtype=torch.float64)
def take_one_elem_per_col(ctx, shape, dtype):
    """take_one_elem_per_col returns [x[1, 0], x[0, 1], x[3, 2]]"""
    M, N = shape
    x = ctx.randn(M, N, dtype=dtype) if dtype.is_floating_point else ctx.randint(-50, 50, (M, N), dtype=dtype)
    reply = ctx.invoke("take_one_elem_per_col", x, return_args=True)
    ctx.expect_unchanged([x], reply, ["x"])
    xc = x.cpu()
    mistakes = (
        {"the rows and the columns are swapped: index x[[1, 0, 3], [0, 1, 2]]": xc[[0, 1, 2], [1, 0, 3]]}
        if N >= 4
        else {}
    )
    want = xc[[1, 0, 3], [0, 1, 2]]
    ctx.expect_tensor(
        reply.value,
        want.to(ctx.device),
        "the picked elements",
        bound=0.0,
        hint="Expected the 1-D tensor [x[1, 0], x[0, 1], x[3, 2]].",
        mistakes=proven(mistakes, want),
    )


@check("a1.warmup.count_negative_entries", function="count_negative_entries", shape=(6, 7), dtype=torch.float32)
def count_negative_entries(ctx, shape, dtype):
    """count_negative_entries counts the entries < 0 as an int"""
    # two tensors (zeros included on purpose), so that a named mistake is proven on more than one input
    xs = [ctx.randint(-3, 4, tuple(shape), dtype=dtype), ctx.randint(-5, 3, tuple(shape), dtype=dtype)]
    answers = []
    for x in xs:
        reply = ctx.invoke("count_negative_entries", x, return_args=True)
        ctx.expect_unchanged([x], reply, ["x"])
        answers.append(reply.value)
    xcs = [x.cpu() for x in xs]
    judge_ints(
        ctx,
        [
            (f"the count for tensor {i + 1} of shape {fmt_shape(x.shape)}", got, int((x < 0).sum()))
            for i, (x, got) in enumerate(zip(xcs, answers))
        ],
        mistakes={
            "you counted the zeros too; only entries < 0 are negative": [int((x <= 0).sum()) for x in xcs],
            "you counted the positive entries": [int((x > 0).sum()) for x in xcs],
        },
    )


@check("a1.warmup.make_one_hot", function="make_one_hot", labels=(3, 0, 3, 1, 0), as_tensor=False)
def make_one_hot(ctx, labels, as_tensor):
    """make_one_hot returns float32 (N, 1 + max) one-hot rows"""
    N, C = len(labels), max(labels) + 1
    expected = torch.zeros(N, C, dtype=torch.float32)
    expected[torch.arange(N), torch.tensor(labels)] = 1
    if as_tensor:
        arg, device, what = torch.tensor(labels, dtype=torch.int64, device=ctx.device), "default", "tensor"
    else:
        arg, device, what = list(labels), "cpu", "list"
    ctx.expect_tensor(
        ctx.call("make_one_hot", arg),
        expected,
        f"make_one_hot of the {what} {list(labels)}",
        bound=0.0,
        dtype=torch.float32,
        device=device,
        hint=f"C = 1 + max(labels) = {C} columns (not the number of distinct labels); row i has "
        "its 1 in column labels[i].",
        mistakes=proven({"the rows and columns are swapped": expected.t()}, expected) if N == C else None,
    )


@check("a1.warmup.reshape_practice", function="reshape_practice", dtype=torch.float64)
def reshape_practice(ctx, dtype):
    """reshape_practice gives the (3, 8) layout"""
    x = ctx.randn(24, dtype=dtype) if dtype.is_floating_point else ctx.randperm(24).to(dtype)
    reply = ctx.invoke("reshape_practice", x, return_args=True)
    ctx.expect_unchanged([x], reply, ["x"])
    xc = x.cpu()
    want = xc.view(2, 3, 4).transpose(0, 1).reshape(3, 8)
    ctx.expect_tensor(
        reply.value,
        want.to(ctx.device),
        "the reshaped tensor",
        bound=0.0,
        hint="Row r is x[4r:4r+4] followed by x[12+4r:12+4r+4]: view x as (2, 3, 4), swap the first "
        "two dimensions, then flatten the last two.",
        mistakes=proven(
            {
                "you reshaped x straight to (3, 8); view it as (2, 3, 4) and swap the first "
                "two dimensions first": xc.view(3, 8),
                "you swapped the wrong pair of dimensions": xc.view(2, 3, 4).permute(1, 2, 0).reshape(3, 8),
            },
            want,
        ),
    )


def _zero_row_min_expected(x: torch.Tensor, got: Any) -> torch.Tensor:
    """x with each row's minimum set to 0. When a minimum repeats, any non-empty set of its occurrences may be
    zeroed: the expectation follows the ones `got` zeroed, and the first one when it zeroed none."""
    x = x.cpu()
    M = x.shape[0]
    expected = x.clone()
    expected[torch.arange(M), x.argmin(dim=1)] = 0
    if isinstance(got, torch.Tensor) and got.shape == x.shape and got.dtype == x.dtype:
        is_min = x == x.min(dim=1, keepdim=True).values  # (M, N)
        zeroed = is_min & (got.cpu() == 0)
        expected = x.clone()
        expected[zeroed] = 0
        none = ~zeroed.any(dim=1)
        expected[torch.arange(M)[none], x.argmin(dim=1)[none]] = 0
    return expected


@check("a1.warmup.zero_row_min", function="zero_row_min", shape=(4, 6), dtype=torch.float64, ties=False)
def zero_row_min(ctx, shape, dtype, ties):
    """zero_row_min zeroes each row's minimum in a copy"""
    M, N = shape
    if ties:  # few distinct values: minima repeat within rows
        x = ctx.randint(1, 4, (M, N), dtype=dtype)
    elif dtype.is_floating_point:  # no zeros, so a zeroed entry is visible
        x = ctx.randn(M, N, dtype=dtype) + 3
    else:
        x = ctx.randperm(M * N).view(M, N).to(dtype) + 1
    reply = ctx.invoke("zero_row_min", x, return_args=True)
    ctx.expect_unchanged([x], reply, ["x"])
    xc = x.cpu()
    col_min = xc.clone()
    col_min[xc.argmin(dim=0), torch.arange(N)] = 0
    row_max = xc.clone()
    row_max[torch.arange(M), xc.argmax(dim=1)] = 0
    want = _zero_row_min_expected(x, reply.value)
    ctx.expect_tensor(
        reply.value,
        want.to(ctx.device),
        "the result",
        bound=0.0,
        hint="Set the smallest entry of each ROW to 0 and leave every other entry as it is.",
        mistakes=proven(
            {
                "you zeroed each column's minimum instead of each row's": col_min,
                "you zeroed each row's maximum instead of its minimum": row_max,
            },
            want,
        ),
    )


def _batched(ctx, use_loop, B, N, M, P, dtype):
    x, y = ctx.randn(B, N, M, dtype=dtype), ctx.randn(B, M, P, dtype=dtype)
    reply = ctx.invoke("batched_matrix_multiply", x, y, use_loop=use_loop, return_args=True)
    ctx.expect_unchanged([x, y], reply, ["x", "y"])
    problems = []
    # the loops that run with this use_loop, read from the code: the function's own and its helpers'
    src = ctx.source("batched_matrix_multiply")
    sites = loop_sites_when(src, "batched_matrix_multiply", use_loop=use_loop) if src is not None else None
    if sites is not None and use_loop and not sites:
        problems.append(
            "with use_loop=True, batched_matrix_multiply should loop over the batch (a Python for loop "
            "over the B matrices, in the function or in a helper it calls); found no loop that runs "
            "when use_loop is True."
        )
    if sites and not use_loop:
        problems.append(
            "with use_loop=False, batched_matrix_multiply must not use a Python loop; found one that "
            f"runs when use_loop is False ({where(sites, 'batched_matrix_multiply')}). One call "
            "(torch.bmm or @) multiplies the whole batch."
        )
    expected = torch.bmm(x.double().cpu(), y.double().cpu())
    try:
        ctx.expect_tensor(
            reply.value,
            expected.to(ctx.device, dtype),
            f"the product (use_loop={use_loop})",
            bound=1e-10 if dtype == torch.float64 else 1e-5,
            hint="z[i] = x[i] @ y[i], shape (B, N, P), with x's dtype and device.",
        )
    except CheckFailed as e:
        problems.append(str(e))
    if problems:
        ctx.fail("\n".join(problems))


@check(
    "a1.warmup.batched_matrix_multiply_loop",
    function="batched_matrix_multiply",
    B=3,
    N=4,
    M=5,
    P=6,
    dtype=torch.float32,
)
def batched_matrix_multiply_loop(ctx, B, N, M, P, dtype):
    """batched_matrix_multiply is right with use_loop=True"""
    _batched(ctx, True, B, N, M, P, dtype)


@check(
    "a1.warmup.batched_matrix_multiply_no_loop",
    function="batched_matrix_multiply",
    B=3,
    N=4,
    M=5,
    P=6,
    dtype=torch.float64,
)
def batched_matrix_multiply_no_loop(ctx, B, N, M, P, dtype):
    """batched_matrix_multiply is right with use_loop=False"""
    _batched(ctx, False, B, N, M, P, dtype)


@check("a1.warmup.normalize_columns", function="normalize_columns", shape=(5, 4), dtype=torch.float64)
def normalize_columns(ctx, shape, dtype):
    """normalize_columns standardises each column (std 1/(M-1))"""
    M, N = shape
    x = ctx.randn(M, N, dtype=torch.float64, scale=3.0) + ctx.randn(1, N, dtype=torch.float64, scale=5.0)
    x = x.to(dtype)
    reply = ctx.invoke("normalize_columns", x, return_args=True)
    ctx.expect_unchanged([x], reply, ["x"])
    xd = x.double().cpu()
    mu, sigma = xd.mean(dim=0, keepdim=True), xd.std(dim=0, keepdim=True)  # std: 1/(M-1)
    expected = (xd - mu) / sigma
    mistakes = {
        "you divide by M in the variance; the standard deviation here uses 1/(M - 1)": expected
        * math.sqrt(M / (M - 1)),
        "you did not subtract the column mean": xd / sigma,
        "you did not divide by the column standard deviation": xd - mu,
    }
    if N >= 2:
        mistakes["you normalised the rows; normalise each column"] = (xd - xd.mean(1, keepdim=True)) / xd.std(
            1, keepdim=True
        )
    ctx.expect_tensor(
        reply.value,
        expected.to(ctx.device, dtype),
        "the normalised columns",
        bound=1e-10 if dtype == torch.float64 else 1e-5,
        mistakes=mistakes,
    )


@check("a1.warmup.mm_on_gpu", function="mm_on_gpu", N=64, M=48, P=32)
def mm_on_gpu(ctx, N, M, P):
    """mm_on_gpu multiplies on CUDA, returns on the CPU"""
    tree, fn = code_of(ctx, "mm_on_gpu")
    if ctx.device.type != "cuda":
        ctx.note("mm_on_gpu was checked by reading your code: there is no CUDA device here.")
    if fn is None:
        ctx.fail("mm_on_gpu is not defined in your file.")
    if _raises_not_implemented(fn):
        ctx.fail("mm_on_gpu is not implemented yet (it raises NotImplementedError).")
    to_cuda, to_cpu, product = device_moves([fn] + [body for _, body in helpers(tree, fn)])
    ctx.expect(
        to_cuda,
        "mm_on_gpu must copy x and w to the GPU (x.cuda() or x.to('cuda')) and multiply them "
        "there; no copy to CUDA was found in your code.",
    )
    ctx.expect(
        product,
        "mm_on_gpu must multiply x and w (x @ w, torch.mm or torch.matmul); no matrix product was found in your code.",
    )
    ctx.expect(
        to_cpu, "mm_on_gpu must return the product on the CPU (.cpu()); no copy back to the CPU was found in your code."
    )
    if ctx.device.type == "cuda":
        x = ctx.randn(N, M, dtype=torch.float32).cpu()
        w = ctx.randn(M, P, dtype=torch.float32).cpu()
        reply = ctx.invoke("mm_on_gpu", x, w, return_args=True)
        ctx.expect_unchanged([x, w], reply, ["x", "w"])
        ctx.expect_tensor(
            reply.value,
            (x.double() @ w.double()).float(),
            "the product",
            bound=1e-4,
            device="cpu",
            hint="mm_on_gpu takes CPU tensors and returns x @ w on the CPU.",
        )


# ---- KNN ------------------------------------------------------------------------------------------


def _distances(ctx, function, num_train, num_test, shape, dtype):
    x_train = ctx.randn(num_train, *shape, dtype=dtype)
    x_test = ctx.randn(num_test, *shape, dtype=dtype)
    reply = ctx.invoke(function, x_train, x_test, return_args=True)
    ctx.expect_unchanged([x_train, x_test], reply, ["x_train", "x_test"])
    expected = sq_distances(x_train, x_test)
    ctx.expect_tensor(
        reply.value,
        expected.to(ctx.device, dtype),
        "the distances",
        bound=1e-5 if dtype == torch.float32 else 1e-10,
        hint="Distances are laid out (num_train, num_test) and are squared Euclidean distances.",
        mistakes={
            "you return Euclidean distances; they should be squared (no square root)": expected.sqrt(),
            "your distances are laid out (num_test, num_train); the layout is (num_train, num_test)": expected.t(),
            # dists[:, j] = ((x_train - x_test[j]) ** 2).sum(): the training images summed too
            "you summed over every dimension (`.sum()` without `dim`), so each column holds one total; sum over "
            "the feature dimensions only (`dim=1` on flattened images)": expected.sum(0, keepdim=True).expand_as(
                expected
            ),
        },
    )


@check(
    "a1.knn.distances_two_loops",
    function="compute_distances_two_loops",
    num_train=20,
    num_test=12,
    shape=(3, 4, 4),
    dtype=torch.float64,
)
def distances_two_loops(ctx, num_train, num_test, shape, dtype):
    """compute_distances_two_loops: squared distances"""
    _distances(ctx, "compute_distances_two_loops", num_train, num_test, shape, dtype)


@check(
    "a1.knn.distances_one_loop",
    function="compute_distances_one_loop",
    num_train=20,
    num_test=12,
    shape=(3, 4, 4),
    dtype=torch.float64,
)
def distances_one_loop(ctx, num_train, num_test, shape, dtype):
    """compute_distances_one_loop: squared distances"""
    _distances(ctx, "compute_distances_one_loop", num_train, num_test, shape, dtype)


@check(
    "a1.knn.distances_no_loops",
    function="compute_distances_no_loops",
    num_train=40,
    num_test=25,
    shape=(3, 4, 4),
    dtype=torch.float64,
)
def distances_no_loops(ctx, num_train, num_test, shape, dtype):
    """compute_distances_no_loops: squared distances"""
    _distances(ctx, "compute_distances_no_loops", num_train, num_test, shape, dtype)


@check("a1.knn.distances_no_loops_memory", function="compute_distances_no_loops", timeout=60.0)
def distances_no_loops_memory(ctx):
    """compute_distances_no_loops fits in memory at CIFAR size"""
    # A (num_train, num_test, D) float32 intermediate is 12 GB on the CPU (3x the sandbox's allowance) and
    # 150 GB on a GPU (more than any card has); the expanded square needs a few tens of MB.
    num_train, num_test = (5000, 2500) if ctx.device.type == "cuda" else (2000, 500)
    x_train = ctx.rand(num_train, 3, 32, 32, dtype=torch.float32)
    x_test = ctx.rand(num_test, 3, 32, 32, dtype=torch.float32)
    try:
        got = ctx.call("compute_distances_no_loops", x_train, x_test)
    except CheckFailed as e:
        if "memory" in str(e).lower():
            raise CheckFailed(
                f"{e}\n  With {num_train} training and {num_test} test images of 3x32x32, a "
                "(num_train, num_test, D) intermediate does not fit; expand "
                "||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b and get all the a.b from one matrix "
                "multiplication."
            ) from None
        raise
    ctx.expect_tensor(got, sq_distances(x_train, x_test).float().to(ctx.device), "the distances", bound=1e-5)


def _toy_dists(device):
    dists = torch.tensor(
        [[0.3, 0.4, 0.1], [0.4, 0.1, 0.2], [0.8, 0.5, 0.3], [0.9, 0.2, 0.9], [0.1, 0.4, 0.6]], device=device
    )  # (num_train 5, num_test 3)
    return dists, torch.tensor([0, 1, 0, 1, 2], device=device)


def _labels(ctx, dists, y_train, k, name):
    reply = ctx.invoke("predict_labels", dists, y_train, k=k, return_args=True)
    ctx.expect_unchanged([dists, y_train], reply, ["dists", "y_train"])
    expected = vote(dists, y_train, k)
    mistakes = {
        "a tied vote must go to the smallest label; yours went to a larger one": vote(
            dists, y_train, k, largest_label_on_tie=True
        ),
        "you voted with the k farthest training images; use the k smallest distances": vote(
            dists, y_train, k, farthest=True
        ),
    }
    ctx.expect_tensor(
        reply.value,
        expected.to(ctx.device),
        name,
        hint="dists is (num_train, num_test): each COLUMN holds one test image's distances, and the "
        "vote is among its k smallest. A tied vote goes to the smallest label.",
        mistakes=proven(mistakes, expected),
    )


@check("a1.knn.predict_labels_toy", function="predict_labels")
def predict_labels_toy(ctx):
    """predict_labels on the toy vote, k=1 and k=3"""
    dists, y_train = _toy_dists(ctx.device)
    for k in (1, 3):
        _labels(ctx, dists, y_train, k, f"the labels of the toy vote with k={k}")


@check(
    "a1.knn.predict_labels_random",
    function="predict_labels",
    num_train=30,
    num_test=20,
    num_classes=4,
    ks=(1, 2, 4, 7),
    dtype=torch.float64,
)
def predict_labels_random(ctx, num_train, num_test, num_classes, ks, dtype):
    """predict_labels: k-nearest vote, ties to smallest"""
    dists = ctx.rand(num_train, num_test, dtype=dtype)
    y_train = ctx.randint(0, num_classes, (num_train,))
    for k in ks:
        _labels(ctx, dists, y_train, k, f"the labels with k={k} ({num_train} training, {num_test} test images)")


# -- composites: KnnClassifier and knn_cross_validate are built from the functions above (their building blocks
# in the manifest). They are judged by plain calls; the grader excuses a failure that a broken block causes.


def data_split(ctx, num_train: int, num_test: int) -> tuple[torch.Tensor, ...]:
    """The first num_train training and num_test test images (float32 CPU, pixels 0-255) and labels of the grading
    data set, and their squared distances (computed once per run)."""

    def load():
        x_train, y_train, x_test, y_test, _ = ctx.dataset()
        x_train, y_train = x_train[:num_train].float(), y_train[:num_train]
        x_test, y_test = x_test[:num_test].float(), y_test[:num_test]
        return x_train, y_train, x_test, y_test, sq_distances(x_train, x_test)

    return ctx.cache(("a1_knn.data", num_train, num_test), load)


def judge_batches(ctx, batches: list, sizes: list[int]) -> torch.Tensor:
    """The labels predicted for consecutive batches of test images, joined (checked: tensors of the right
    length)."""
    for got, n in zip(batches, sizes):
        ctx.expect_type(got, torch.Tensor, "the predicted labels")
        ctx.expect(
            tuple(got.shape) == (n,),
            f"the predicted labels: expected shape ({n},) for {n} test images, found {fmt_shape(got.shape)}.",
        )
    return torch.cat([b.cpu() for b in batches]).to(batches[0].device, batches[0].dtype)


@check(
    "a1.knn.classifier_predict",
    function="KnnClassifier",
    num_train=60,
    num_test=40,
    shape=(3, 4, 4),
    k=5,
    dtype=torch.float64,
)
def classifier_predict(ctx, num_train, num_test, shape, k, dtype):
    """KnnClassifier.predict returns k-NN labels"""
    # Two classes and an odd k: no vote can tie, so predict_labels' tie rule does not matter here. The classes
    # overlap, so k matters.
    x, y = clusters(ctx, num_train + num_test, shape, 2, dtype, spread=2.5)
    x_train, y_train, x_test = x[:num_train], y[:num_train], x[num_train:]
    clf = ctx.call("KnnClassifier", x_train, y_train)
    ctx.expect(
        getattr(clf, "type", None) == "KnnClassifier",
        f"KnnClassifier(x_train, y_train) should give a KnnClassifier object; found {clf!r}.",
    )
    pred = ctx.method(clf, "predict", x_test, k=k)
    d = sq_distances(x_train, x_test)
    expected = vote(d, y_train, k)
    ctx.expect_tensor(
        pred,
        expected.to(ctx.device),
        f"the predicted labels with k={k}",
        hint="predict takes the distances between the memorised training images and x_test "
        "(num_train, num_test) and votes among each test image's k nearest.",
        mistakes=proven(
            {
                "you ignore k and always vote with k=1": vote(d, y_train, 1),
                "you voted with the k farthest training images": vote(d, y_train, k, farthest=True),
            },
            expected,
        ),
    )


@check("a1.knn.classifier_accuracy", function="KnnClassifier", num_train=5000, num_test=500, k=1)
def classifier_accuracy(ctx, num_train, num_test, k):
    """KnnClassifier reaches the accuracy target"""
    x_train, y_train, x_test, y_test, dists = data_split(ctx, num_train, num_test)
    x_train_d, y_train_d, x_test_d = x_train.to(ctx.device), y_train.to(ctx.device), x_test.to(ctx.device)
    chunk = max(1, 2**30 // (x_train[0].numel() * x_train.shape[0] * 4))  # even (train, chunk, D) fits
    clf = ctx.call("KnnClassifier", x_train_d, y_train_d)
    batches = [ctx.method(clf, "predict", part, k=k) for part in x_test_d.split(chunk)]  # labels stay here
    expected = vote(dists, y_train, k)
    target = ctx.target("knn_k1_accuracy")
    pred = judge_batches(ctx, batches, [len(p) for p in x_test.split(chunk)])
    ctx.expect_layout(pred, tuple(expected.shape), torch.int64, "the predicted labels")
    agree = (pred.cpu() == expected).double().mean().item() * 100
    ctx.expect(
        agree >= 99.0,
        f"only {agree:.1f}% of your predictions match k-nearest neighbours with k={k} "
        "(at least 99% should: a few may differ where two distances tie).",
    )
    accuracy = (pred.cpu() == y_test).double().mean().item() * 100
    ctx.note(
        f"accuracy {accuracy:.1f}% with k={k} on {ctx.dataset_name} "
        f"({x_train.shape[0]} training, {x_test.shape[0]} test images; target {target:g}%)"
    )
    ctx.expect(accuracy >= target, f"accuracy {accuracy:.1f}% is below the target {target:g}%.")


def _accuracies(ctx, got: Any, k_choices: list[int] | None, num_folds: int) -> dict[int, list[float]]:
    """Check the shape of knn_cross_validate's result: {k: [num_folds percentages]} for every k."""
    ctx.expect_type(got, dict, "the result of knn_cross_validate")
    if k_choices is not None and set(got) != set(k_choices):
        ctx.fail(
            f"the result's keys: expected the k values {list(k_choices)}, found "
            f"{sorted(got, key=lambda v: (str(type(v)), v))}"
            + (" (None for k_choices means the default list)" if k_choices == DEFAULT_K_CHOICES else "")
            + "."
        )
    for k, accs in got.items():
        ctx.expect(
            isinstance(k, int) and not isinstance(k, bool),
            f"the result's keys must be the int values of k; found {k!r}.",
        )
        ctx.expect_type(accs, (list, tuple), f"k_to_accuracies[{k}]")
        ctx.expect(
            len(accs) == num_folds,
            f"k_to_accuracies[{k}]: expected {num_folds} accuracies (one per fold), found {len(accs)}.",
        )
        for i, a in enumerate(accs):
            if isinstance(a, torch.Tensor):
                ctx.fail(f"k_to_accuracies[{k}][{i}] is a tensor; append a Python float (e.g. with .item()).")
            ctx.expect(
                isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a),
                f"k_to_accuracies[{k}][{i}]: expected a float percentage, found {a!r}.",
            )
    return got


def _compare_folds(ctx, got, x, y, num_folds, ks):
    expected = cross_validate(x, y, num_folds, ks)

    def close(g, e):  # relative 1e-6: a float32 accuracy (e.g. .float().mean().item()) is as right as a float64 one
        return abs(g - e) <= 1e-6 * max(1.0, abs(e))

    def same(a, b):
        return all(close(g, e) for k in ks for g, e in zip(a[k], b[k]))

    if same(got, expected):
        return

    def proves(alt):  # a known mistake explains every accuracy and differs from the right ones in two or more
        return same(got, alt) and sum(not close(a, e) for k in ks for a, e in zip(alt[k], expected[k])) >= 2

    mistakes = {
        "your accuracies look like fractions (0 to 1); they should be percentages (0 to 100)": lambda: {
            k: [e / 100 for e in expected[k]] for k in ks
        },
        "the held-out fold seems to be among the training data; train on the other folds only": lambda: cross_validate(
            x, y, num_folds, ks, leak=True
        ),
        "your folds are split like torch.tensor_split; split in order as torch.chunk does": lambda: cross_validate(
            x, y, num_folds, ks, split=torch.tensor_split
        ),
    }
    why = next((d for d, alt in mistakes.items() if proves(alt())), "")
    k, i = next((k, i) for k in ks for i, (g, e) in enumerate(zip(got[k], expected[k])) if not close(g, e))
    msg = (
        f"k_to_accuracies[{k}][{i}] (k={k}, fold {i} held out): expected {expected[k][i]:.4f}%, found "
        f"{got[k][i]:.4f}%."
        + (
            f" Likely bug: {why}."
            if why
            else " Fold i is the i-th of torch.chunk(x_train, num_folds); the other folds, "
            "concatenated, are the training data."
        )
    )
    ctx.fail(msg, mistakes=[why] if why else [])


@check(
    "a1.knn.cross_validate",
    function="knn_cross_validate",
    num_train=50,
    shape=(2, 3, 3),
    num_folds=5,
    k_choices=(1, 3, 5, 7),
    dtype=torch.float64,
    spread=2.5,
)
def cross_validate_folds(ctx, num_train, shape, num_folds, k_choices, dtype, spread):
    """knn_cross_validate: per-fold accuracies in percent"""
    # Two classes and odd k: no vote ties, so only the folds and the accuracies are judged here.
    x, y = clusters(ctx, num_train, shape, 2, dtype, spread=spread)
    reply = ctx.invoke("knn_cross_validate", x, y, num_folds=num_folds, k_choices=list(k_choices), return_args=True)
    ctx.expect_unchanged([x, y], reply, ["x_train", "y_train"])
    got = _accuracies(ctx, reply.value, list(k_choices), num_folds)
    _compare_folds(ctx, got, x, y, num_folds, list(k_choices))


@check("a1.knn.cross_validate_default_k", function="knn_cross_validate", num_train=150, shape=(4, 3), num_folds=5)
def cross_validate_default_k(ctx, num_train, shape, num_folds):
    """knn_cross_validate: default k_choices"""
    x, y = clusters(ctx, num_train, shape, 2, torch.float64, spread=2.5)
    got = _accuracies(ctx, ctx.call("knn_cross_validate", x, y, num_folds=num_folds), DEFAULT_K_CHOICES, num_folds)
    _compare_folds(ctx, got, x, y, num_folds, [k for k in DEFAULT_K_CHOICES if k % 2])  # odd k: no vote ties


@check("a1.knn.cross_validate_best_k", function="knn_cross_validate", num_train=5000, num_test=500, num_folds=5)
def cross_validate_best_k(ctx, num_train, num_test, num_folds):
    """knn_cross_validate's best k reaches the target"""
    x_train, y_train, _, y_test, dists = data_split(ctx, num_train, num_test)
    got = ctx.call("knn_cross_validate", x_train.to(ctx.device), y_train.to(ctx.device), num_folds=num_folds)
    got = _accuracies(ctx, got, DEFAULT_K_CHOICES, num_folds)
    k = best_k(got)  # chosen here, not by your knn_get_best_k, so each function is judged on its own
    accuracy = (vote(dists, y_train, k) == y_test).double().mean().item() * 100
    target = ctx.target("knn_best_k_accuracy")
    ctx.note(
        f"cross-validation on {x_train.shape[0]} images of {ctx.dataset_name} picked k={k} "
        f"(mean {sum(got[k]) / len(got[k]):.1f}%); test accuracy {accuracy:.1f}% (target {target:g}%)"
    )
    ctx.expect(
        accuracy >= target,
        f"with k={k}, the best k of your cross-validation, k-NN reaches "
        f"{accuracy:.1f}% on the test set, below the target {target:g}%.",
    )


BEST_K_CASES = {
    "public": [
        ({1: [10.0, 20.0], 3: [30.0, 30.0], 5: [25.0, 25.0]}, "a clear winner"),
        ({1: [20.0, 30.0], 3: [25.0, 25.0], 5: [30.0, 20.0], 8: [10.0, 10.0]}, "a three-way tie"),
        ({1: [90.0, 10.0], 3: [60.0, 60.0], 5: [55.0, 55.0]}, "one high fold"),
    ],
    "unsorted_keys": [
        ({10: [40.0, 40.0], 5: [30.0, 50.0], 3: [20.0, 20.0], 1: [35.0, 45.0]}, "a tie, keys in descending order"),
        ({100: [50.0, 50.0], 50: [62.5, 37.5], 20: [49.0, 49.0]}, "a tie, keys in descending order"),
        ({8: [12.5, 12.5, 12.5], 3: [12.5, 12.5, 12.5], 12: [0.0, 0.0, 37.5]}, "a tie, keys in no order"),
    ],
    "unequal_lengths": [
        ({1: [50.0, 50.0, 50.0], 3: [60.0, 60.0]}, "lists of different lengths"),
        ({1: [75.0], 5: [70.0, 80.0, 75.0, 75.0], 7: [74.0, 76.0, 70.0]}, "a tie between lists of different lengths"),
    ],
}


@check("a1.knn.get_best_k", function="knn_get_best_k", case="public")
def get_best_k(ctx, case):
    """knn_get_best_k: highest mean, ties to smallest k"""
    cases, mistakes = [], {}

    def mistake(description: str, value: int) -> None:
        mistakes.setdefault(description, []).append(value)

    for k_to_acc, what in BEST_K_CASES[case]:
        want = best_k(k_to_acc)
        means = {k: sum(v) / len(v) for k, v in k_to_acc.items()}
        top = [k for k, m in means.items() if m == means[want]]
        try:
            reply = ctx.invoke("knn_get_best_k", k_to_acc, return_args=True)
            ctx.expect(reply.args[0] == k_to_acc, "knn_get_best_k modified its input dictionary; leave it unchanged.")
            got = reply.value
        except CheckFailed as e:
            if not cases:
                raise
            got = e
        cases.append(
            (
                f"knn_get_best_k({k_to_acc}) ({what}; mean accuracies { {k: round(m, 4) for k, m in means.items()} })",
                got,
                want,
            )
        )
        mistake("on a tie, return the smallest of the tied k", max(top))
        mistake(
            "pick k by the mean over the folds, not by the best single fold",
            min(k_to_acc, key=lambda k: (-max(k_to_acc[k]), k)),
        )
        mistake("pick k by the mean accuracy, not the sum", min(k_to_acc, key=lambda k: (-sum(k_to_acc[k]), k)))
        mistake(
            "on a tie, return the smallest tied k, not the first one in the dictionary",
            next(k for k in k_to_acc if k in top),
        )
    judge_ints(ctx, cases, mistakes)
