"""
PyTorch 101: small exercises in creating, indexing, reshaping and computing with tensors.

Each function is a few lines long. Unless a docstring says otherwise:
- vectorise with PyTorch operations instead of Python loops; where a docstring says "no loops", the grader
  counts them (for, while and comprehensions, in the function and in any helper of yours it calls);
- do not modify the input tensors (work on new tensors or on a copy);
- return results with the device and dtype of the input: create new tensors with `device=x.device` (and
  `dtype=x.dtype` where a dtype is not prescribed). The grader checks the dtype and the device of every result.

Rules the grader enforces in this file (see `grader list --rules`):
- count_tensor_elements may not use:
  - torch.numel, torch.Tensor.numel: counting the elements from the sizes of the dimensions is the
    exercise.
  - torch.Tensor.nelement: it is numel under another name.
  - torch.Size.numel: a shape's numel counts the elements for you: multiply the sizes of the
    dimensions.
- normalize_columns may not use:
  - torch.mean, torch.nanmean, torch.Tensor.mean, torch.Tensor.nanmean: computing the mean from sums
    is the exercise.
  - torch.std, torch.Tensor.std: computing the standard deviation from sums is the exercise.
  - torch.var, torch.Tensor.var: computing the variance from sums is the exercise.
  - torch.std_mean: computing the mean and the standard deviation from sums is the exercise.
  - torch.var_mean: computing the mean and the variance from sums is the exercise.
  - torch.nn.functional.batch_norm, torch.batch_norm, torch.native_batch_norm,
    torch.nn.functional.layer_norm, torch.layer_norm, torch.native_layer_norm,
    torch.nn.functional.instance_norm, torch.instance_norm, torch.nn.functional.group_norm,
    torch.group_norm, torch.native_group_norm, torch.nn.BatchNorm1d, torch.nn.LayerNorm: it
    normalises for you: compute the mean and the standard deviation from sums, as the exercise asks.
  - torch.nn.functional.normalize: it rescales the columns for you: compute the mean and the
    standard deviation from sums, as the exercise asks.
- count_negative_entries, make_one_hot, reshape_practice, zero_row_min, normalize_columns: no loops
  (for, while, comprehensions, map, filter, functools.reduce, itertools or recursion; loops in the
  helpers it calls count too).
- the file may use: only the modules torch, math, random, statistics, typing, abc, enum,
  collections, functools, itertools, dataclasses, a1_knn, dlcv (a use of another module holds back
  every function of the file; an import that nothing uses only earns a warning).

Your code goes where a TODO comment asks for it; leave the rest of the file as it is.
"""

from __future__ import annotations

import torch

from a1_knn.given import mm_on_cpu  # noqa: F401 (given code, kept by the kit)


def create_sample_tensor() -> torch.Tensor:
    """
    Return a small float32 tensor of shape (3, 2) that is all zeros except for two entries:

        [[  0,  10],
         [100,   0],
         [  0,   0]]

    Returns:
    - x: float32 tensor of shape (3, 2) with x[0, 1] = 10 and x[1, 0] = 100; all other entries 0.
    """
    x = None
    # TODO: Create a float32 tensor of shape (3, 2) filled with zeros, then set the element in row 0,
    # column 1 to 10 and the element in row 1, column 0 to 100.
    # BEGIN SOLUTION
    x = torch.zeros(3, 2, dtype=torch.float32)  # (3, 2)
    x[0, 1] = 10
    x[1, 0] = 100
    # END SOLUTION
    return x


def mutate_tensor(x: torch.Tensor, indices: list[tuple[int, int]], values: list[float]) -> torch.Tensor:
    """
    Set x[i, j] = v for every pair (i, j), v from `indices` and `values`, modifying x in place.

    If the same (i, j) appears more than once, the last value written for it wins. A Python loop over the
    pairs is allowed here.

    Inputs:
    - x: tensor of shape (M, N), any dtype.
    - indices: list of K index pairs (i, j), with 0 <= i < M and 0 <= j < N.
    - values: list of K numbers; values[k] goes to position indices[k].

    Returns:
    - x: the same tensor object as the input, after the assignments.
    """
    # TODO: For each index pair and its value, in order, write the value into x at that position.
    # Modify x itself (do not make a copy).
    # BEGIN SOLUTION
    for (i, j), v in zip(indices, values):
        x[i, j] = v
    # END SOLUTION
    return x


def count_tensor_elements(x: torch.Tensor) -> int:
    """
    Count the number of scalar elements in a tensor of any shape, without `x.numel()` or `torch.numel`.

    For example, a tensor of shape (10,) has 10 elements and a tensor of shape (3, 4) has 12; a tensor of
    shape () (a scalar) has 1.

    Inputs:
    - x: tensor of any shape (D1, ..., Dn).

    Returns:
    - num_elements: Python int, the product D1 * ... * Dn.
    """
    num_elements = None
    # TODO: Compute the number of elements from the sizes of x's dimensions. Do not use numel.
    # The result must be a Python int.
    # BEGIN SOLUTION
    num_elements = 1
    for size in x.shape:
        num_elements *= size
    # END SOLUTION
    return num_elements


def create_tensor_of_pi(M: int, N: int) -> torch.Tensor:
    """
    Return a tensor of shape (M, N) in which every entry is 3.14.

    Inputs:
    - M, N: positive ints, the number of rows and columns.

    Returns:
    - x: float32 tensor of shape (M, N) filled with 3.14.
    """
    x = None
    # TODO: Create the (M, N) float32 tensor with every entry equal to 3.14, in one call.
    # BEGIN SOLUTION
    x = torch.full((M, N), 3.14, dtype=torch.float32)  # (M, N)
    # END SOLUTION
    return x


def multiples_of_ten(start: int, stop: int) -> torch.Tensor:
    """
    Return the multiples of ten between start and stop (both inclusive), in increasing order.

    For example multiples_of_ten(5, 25) is [10., 20.] and multiples_of_ten(5, 9) is empty.

    Inputs:
    - start, stop: ints with start <= stop.

    Returns:
    - x: float64 tensor of shape (K,) holding every multiple of ten in [start, stop]; shape (0,) (an empty
      float64 tensor) if there is none.
    """
    assert start <= stop, f"multiples_of_ten needs start <= stop, got start={start}, stop={stop}"
    x = None
    # TODO: Find the first multiple of ten that is >= start. If it is larger than stop, make x an empty
    # float64 tensor of shape (0,); otherwise make x the float64 sequence from it to stop in steps of ten.
    # BEGIN SOLUTION
    first = start + (-start) % 10  # smallest multiple of ten >= start
    if first > stop:
        x = torch.zeros(0, dtype=torch.float64)  # (0,)
    else:
        x = torch.arange(first, stop + 1, 10, dtype=torch.float64)  # (K,)
    # END SOLUTION
    return x


def slice_indexing_practice(
    x: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Pick out parts of a 2-D tensor, each with a single slicing operation (no integer-list indexing).

    Inputs:
    - x: tensor of shape (M, N) with M >= 3 and N >= 3.

    Returns a tuple of:
    - last_row: tensor of shape (N,), the last row of x (1-D).
    - third_col: tensor of shape (M, 1), the third column of x (kept 2-D).
    - first_two_rows_three_cols: tensor of shape (2, 3), the first two rows and first three columns of x.
    - even_rows_odd_cols: tensor holding the rows of x with an even index (0, 2, 4, ...) and, within them,
      the columns with an odd index (1, 3, 5, ...); shape (ceil(M / 2), N // 2).
    """
    M, N = x.shape
    assert M >= 3 and N >= 3, f"x must be (M, N) with M, N >= 3; got {tuple(x.shape)}"
    last_row = None
    third_col = None
    first_two_rows_three_cols = None
    even_rows_odd_cols = None
    # TODO: Set each of the four outputs with one slicing expression on x each. Mind the shapes: the
    # last row is 1-D, the third column stays 2-D.
    # BEGIN SOLUTION
    last_row = x[-1, :]  # (N,)
    third_col = x[:, 2:3]  # (M, 1)
    first_two_rows_three_cols = x[:2, :3]  # (2, 3)
    even_rows_odd_cols = x[::2, 1::2]  # (ceil(M/2), N//2)
    # END SOLUTION
    out = (last_row, third_col, first_two_rows_three_cols, even_rows_odd_cols)
    return out


def slice_assignment_practice(x: torch.Tensor) -> torch.Tensor:
    """
    Overwrite the top-left 4 x 6 block of x, in place, so that it reads:

        [[0, 1, 2, 2, 2, 2],
         [0, 1, 2, 2, 2, 2],
         [3, 4, 3, 4, 5, 5],
         [3, 4, 3, 4, 5, 5]]

    Use at most 6 slice assignments (statements of the form x[...] = value with slices inside the
    brackets). Entries outside the block are left as they are.

    Inputs:
    - x: tensor of shape (M, N) with M >= 4 and N >= 6.

    Returns:
    - x: the same tensor object as the input, after the assignments.
    """
    M, N = x.shape
    assert M >= 4 and N >= 6, f"x must be (M, N) with M >= 4, N >= 6; got {tuple(x.shape)}"
    # TODO: Write the pattern above into x[:4, :6] with at most six slice assignments, each setting a
    # rectangular (possibly strided) block of x to a single number.
    # BEGIN SOLUTION
    x[:2, 0] = 0
    x[:2, 1] = 1
    x[:2, 2:6] = 2
    x[2:4, 0:4:2] = 3
    x[2:4, 1:4:2] = 4
    x[2:4, 4:6] = 5
    # END SOLUTION
    return x


def shuffle_cols(x: torch.Tensor) -> torch.Tensor:
    """
    Build a new tensor from columns of x, in this order: column 0, column 0 again, column 2, column 1.

    Use a single indexing operation.

    Inputs:
    - x: tensor of shape (M, N) with N >= 3.

    Returns:
    - y: tensor of shape (M, 4) with y[:, 0] = x[:, 0], y[:, 1] = x[:, 0], y[:, 2] = x[:, 2],
      y[:, 3] = x[:, 1].
    """
    y = None
    # TODO: Build y by indexing the columns of x with a list of column indices, in one operation.
    # BEGIN SOLUTION
    y = x[:, [0, 0, 2, 1]]  # (M, 4)
    # END SOLUTION
    return y


def reverse_rows(x: torch.Tensor) -> torch.Tensor:
    """
    Return a new tensor holding the rows of x in reverse order: the first row of the output is the last row
    of x, and so on.

    Inputs:
    - x: tensor of shape (M, N).

    Returns:
    - y: tensor of shape (M, N) with y[i] = x[M - 1 - i].
    """
    y = None
    # TODO: Reverse the order of the rows of x in one operation. (PyTorch does not allow negative steps
    # in slices.)
    # BEGIN SOLUTION
    y = torch.flip(x, dims=(0,))  # (M, N)
    # END SOLUTION
    return y


def take_one_elem_per_col(x: torch.Tensor) -> torch.Tensor:
    """
    Return the 1-D tensor [x[1, 0], x[0, 1], x[3, 2]]: one element from each of the first three columns.

    Use a single indexing operation (integer-array indexing with a list of rows and a list of columns).

    Inputs:
    - x: tensor of shape (M, N) with M >= 4 and N >= 3.

    Returns:
    - y: tensor of shape (3,) with y[0] = x[1, 0], y[1] = x[0, 1], y[2] = x[3, 2].
    """
    y = None
    # TODO: Build y with one integer-array index into x: one list of row indices and one list of column
    # indices, paired up position by position.
    # BEGIN SOLUTION
    y = x[[1, 0, 3], [0, 1, 2]]  # (3,)
    # END SOLUTION
    return y


def count_negative_entries(x: torch.Tensor) -> int:
    """
    Count the entries of x that are strictly negative, using a single boolean mask (no loops).

    Inputs:
    - x: tensor of any shape.

    Returns:
    - num_neg: Python int, the number of entries of x that are < 0.
    """
    num_neg = 0
    # TODO: Make a boolean mask of the negative entries of x, count its True values and convert the count
    # to a Python int.
    # BEGIN SOLUTION
    num_neg = int((x < 0).sum().item())
    # END SOLUTION
    return num_neg


def make_one_hot(labels: list[int] | torch.Tensor) -> torch.Tensor:
    """
    Turn a list of N class labels into their one-hot encoding.

    With C = 1 + max(labels), row i of the output is all zeros except for a one in column labels[i].
    For example make_one_hot([1, 0, 2]) is [[0, 1, 0], [1, 0, 0], [0, 0, 1]].

    Inputs:
    - labels: a list of N >= 1 non-negative ints (or an int64 tensor of shape (N,)).

    Returns:
    - y: float32 tensor of shape (N, C), C = 1 + max(labels). When labels is a tensor, y is on its device.
    """
    y = None
    # TODO: Make y a float32 tensor of zeros of shape (N, C) (on the labels' device when they are a
    # tensor), then write the ones with one indexing assignment, without a loop.
    # BEGIN SOLUTION
    labels = torch.as_tensor(labels, dtype=torch.int64)  # (N,)
    N = labels.shape[0]
    C = int(labels.max().item()) + 1
    y = torch.zeros(N, C, dtype=torch.float32, device=labels.device)  # (N, C)
    y[torch.arange(N, device=labels.device), labels] = 1
    # END SOLUTION
    return y


def reshape_practice(x: torch.Tensor) -> torch.Tensor:
    """
    Rearrange a tensor of shape (24,) into shape (3, 8) as follows:

        x = [x0, x1, ..., x23]   ->   y = [[x0, x1, x2,  x3,  x12, x13, x14, x15],
                                           [x4, x5, x6,  x7,  x16, x17, x18, x19],
                                           [x8, x9, x10, x11, x20, x21, x22, x23]]

    Row r of y is x[4r : 4r + 4] followed by x[12 + 4r : 12 + 4r + 4]. Do it with reshapes and a
    transpose/permute only (no indexing, no concatenation, no loops).

    Inputs:
    - x: tensor of shape (24,).

    Returns:
    - y: tensor of shape (3, 8) as above.
    """
    assert x.shape == (24,), f"x must have shape (24,), got {tuple(x.shape)}"
    y = None
    # TODO: View x as three dimensions, swap two of them, then merge the last two dimensions into one.
    # Work out on paper which shape and which swap produce the layout above.
    # BEGIN SOLUTION
    y = x.view(2, 3, 4)  # (2, 3, 4): y[a, r, c] = x[12a + 4r + c]
    y = y.transpose(0, 1)  # (3, 2, 4): y[r, a, c]
    y = y.reshape(3, 8)  # (3, 8); reshape copies because the transpose is not contiguous
    # END SOLUTION
    return y


def zero_row_min(x: torch.Tensor) -> torch.Tensor:
    """
    Return a copy of x in which the smallest element of each row is set to zero (x is not changed).

    For example [[10, 20, 30], [2, 5, 1]] becomes [[0, 20, 30], [2, 5, 0]]. If a row's minimum appears
    more than once, set (at least) one of its occurrences to zero. No loops.

    Inputs:
    - x: tensor of shape (M, N).

    Returns:
    - y: tensor of shape (M, N), same dtype and device as x.
    """
    y = None
    # TODO: Make y a copy of x. Find the column index of the minimum of each row, then set those M
    # positions of y to zero with one indexing assignment.
    # BEGIN SOLUTION
    M = x.shape[0]
    y = x.clone()  # (M, N)
    min_cols = x.argmin(dim=1)  # (M,)
    y[torch.arange(M, device=x.device), min_cols] = 0
    # END SOLUTION
    return y


def batched_matrix_multiply(x: torch.Tensor, y: torch.Tensor, use_loop: bool = True) -> torch.Tensor:
    """
    Multiply two batches of matrices: z[i] = x[i] @ y[i] for every i in the batch.

    Inputs:
    - x: tensor of shape (B, N, M).
    - y: tensor of shape (B, M, P), same dtype and device as x.
    - use_loop: if True, use a Python loop over the B matrices of the batch; if False, no loop at all.

    Returns:
    - z: tensor of shape (B, N, P), same dtype and device as x.
    """
    B, N, M = x.shape
    assert y.shape[:2] == (B, M), f"shapes do not match: x is {tuple(x.shape)}, y is {tuple(y.shape)}"
    P = y.shape[2]
    z = None
    if use_loop:
        # TODO: Loop over the batch: multiply the i-th matrix of x by the i-th matrix of y and collect the
        # B products into z of shape (B, N, P), on x's device and with x's dtype.
        # BEGIN SOLUTION
        z = torch.empty(B, N, P, dtype=x.dtype, device=x.device)  # (B, N, P)
        for i in range(B):
            z[i] = x[i] @ y[i]  # (N, P)
        # END SOLUTION
    else:
        # TODO: Compute all B products with a single PyTorch call, no loop.
        # BEGIN SOLUTION
        z = torch.bmm(x, y)  # (B, N, P)
        # END SOLUTION
    return z


def normalize_columns(x: torch.Tensor) -> torch.Tensor:
    """
    Normalise each column of x to zero mean and unit standard deviation: y = (x - mu) / sigma, where mu
    and sigma are the mean and the standard deviation of the column.

    Use the unbiased standard deviation, sigma = sqrt(sum_i (x[i, j] - mu[j])^2 / (M - 1)). Compute mu and
    sigma yourself from sums: no loops, and no calls to `mean`, `std` or `var`.

    Inputs:
    - x: float tensor of shape (M, N) with M >= 2.

    Returns:
    - y: tensor of shape (M, N), same dtype and device as x.
    """
    M = x.shape[0]
    y = None
    # TODO: Compute the column means (shape (1, N)) and the column standard deviations (shape (1, N))
    # from sums, as defined above, then normalise x with broadcasting.
    # BEGIN SOLUTION
    mu = x.sum(dim=0, keepdim=True) / M  # (1, N)
    centred = x - mu  # (M, N)
    sigma = ((centred * centred).sum(dim=0, keepdim=True) / (M - 1)).sqrt()  # (1, N)
    y = centred / sigma  # (M, N)
    # END SOLUTION
    return y


def mm_on_gpu(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """
    Matrix product computed on the GPU (CUDA), with the result returned on the CPU.

    This is the one function in the course where you move tensors between devices yourself. On a large
    product it is much faster than `mm_on_cpu`, despite the copies.

    Inputs:
    - x: tensor of shape (N, M) on the CPU.
    - w: tensor of shape (M, P) on the CPU.

    Returns:
    - y: tensor of shape (N, P) on the CPU, equal to x @ w.
    """
    y = None
    # TODO: Copy x and w to the GPU, multiply them there, and copy the product back to the CPU.
    # BEGIN SOLUTION
    y = (x.cuda() @ w.cuda()).cpu()  # (N, P)
    # END SOLUTION
    return y
