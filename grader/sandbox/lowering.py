"""What each forbidden name is, for the worker's guard (grader.sandbox.guard): the ATen operators it lowers to
(`aten_ops`), the public name of a PyTorch callable as the function mode receives it (`canonical`), and the names
autograd is reported under.

A forbidden name's operators are found one of two ways. Its own operator, derived from the name and this
PyTorch's dispatcher: `torch.nn.functional.embedding` is aten::embedding, `torch.linalg.norm` is
aten::linalg_norm, with their in-place forms. A call through `torch.ops.aten` is matched by that operator
before PyTorch decomposes it, so `torch.ops.aten.rnn_tanh_cell(...)` is `torch.rnn_tanh_cell` even though no mode
ever sees that operator run.
Or ATEN_OPS, whose entry for a name is final: what PyTorch lowers it to under other names (cdist runs
_euclidean_dist or _cdist_forward, by size), which only running it shows, and names whose ATen namesake is another
operation (torch.nn.functional.unfold is im2col; aten::unfold is Tensor.unfold). A new forbidden name needs an
entry only in those cases (tests/grader/test_guard.py probes every name of every manifest).
"""

from __future__ import annotations

import types
from typing import Any

import torch

# ---- what each forbidden name lowers to ------------------------------------------------------------------
# The ATen operators (OpOverload._opname) each forbidden name reaches the dispatcher as, found by running each
# call under a logging TorchDispatchMode (torch 2.x, CPU and CUDA kernels' names both listed where they differ).
# Composite functions that decompose into generic operators (torch.nn.functional.linear -> mm/addmm, dropout ->
# bernoulli_/mul, numel -> no operator at all) have no entry: the function mode catches them by name, and an
# entry would flag code that writes the same arithmetic out by hand (which is what the student is asked to do).
_CONV = frozenset(
    {
        "convolution",
        "_convolution",
        "conv2d",
        "cudnn_convolution",
        "mkldnn_convolution",
        "_slow_conv2d_forward",
        "thnn_conv2d",
        "_nnpack_spatial_convolution",
        "convolution_overrideable",
        "_conv_depthwise2d",
        "slow_conv_dilated2d",
        "miopen_convolution",
        "conv_tbc",
    }
)
_CONV_T = frozenset(
    {
        "convolution",
        "_convolution",
        "conv_transpose2d",
        "cudnn_convolution_transpose",
        "slow_conv_transpose2d",
        "miopen_convolution_transpose",
        "mkldnn_convolution",
    }
)
_MAXPOOL = frozenset(
    {
        "max_pool2d_with_indices",
        "max_pool2d",
        "mkldnn_max_pool2d",
        "quantized_max_pool2d",
        "_mps_max_pool2d",
        "max_pool2d_with_indices_backward",
    }
)
_BATCHNORM = frozenset(
    {
        "native_batch_norm",
        "_native_batch_norm_legit",
        "_native_batch_norm_legit_no_training",
        "_native_batch_norm_legit_functional",
        "_batch_norm_with_update",
        "_batch_norm_no_update",
        "batch_norm",
        "_batch_norm_impl_index",
        "cudnn_batch_norm",
        "miopen_batch_norm",
        "native_batch_norm_backward",
    }
)
_LAYERNORM = frozenset({"native_layer_norm", "layer_norm"})
_ATTENTION = frozenset(
    {
        "scaled_dot_product_attention",
        "_scaled_dot_product_attention_math",
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_fused_attention_overrideable",
    }
)
_GROUPNORM = frozenset({"native_group_norm", "group_norm"})
_NORM = frozenset({"norm", "linalg_vector_norm", "frobenius_norm", "nuclear_norm", "linalg_norm", "linalg_matrix_norm"})
ATEN_OPS: dict[str, frozenset[str]] = {
    # pdist of both sets' rows holds every distance of cdist(a, b) (its a-b block)
    "torch.cdist": frozenset(
        {"_cdist_forward", "_euclidean_dist", "cdist", "_cdist_backward", "_pdist_forward", "pdist", "_pdist_backward"}
    ),
    "torch.dist": frozenset({"dist"}),
    "torch.Tensor.dist": frozenset({"dist"}),
    "torch.norm": _NORM,
    "torch.Tensor.norm": _NORM,
    "torch.mean": frozenset({"mean"}),
    "torch.Tensor.mean": frozenset({"mean"}),
    "torch.std": frozenset({"std", "std_mean"}),
    "torch.Tensor.std": frozenset({"std", "std_mean"}),
    "torch.var": frozenset({"var", "var_mean"}),
    "torch.Tensor.var": frozenset({"var", "var_mean"}),
    "torch.std_mean": frozenset({"std_mean"}),
    "torch.var_mean": frozenset({"var_mean"}),
    "torch.relu": frozenset({"relu"}),
    "torch.relu_": frozenset({"relu_"}),
    "torch.Tensor.relu": frozenset({"relu"}),
    "torch.Tensor.relu_": frozenset({"relu_"}),
    "torch.nn.functional.relu": frozenset({"relu", "relu_"}),
    "torch.nn.functional.relu_": frozenset({"relu_"}),
    "torch.nn.functional.conv2d": _CONV,
    "torch.conv2d": _CONV,
    "torch.convolution": _CONV | _CONV_T,
    "torch.nn.functional.conv_transpose2d": _CONV_T,
    "torch.conv_transpose2d": _CONV_T,
    "torch.nn.grad.conv2d_input": frozenset({"convolution_backward"}),
    "torch.nn.grad.conv2d_weight": frozenset({"convolution_backward"}),
    "torch.nn.functional.unfold": frozenset({"im2col"}),
    "torch.nn.functional.fold": frozenset({"col2im"}),
    "torch.Tensor.unfold": frozenset({"unfold"}),
    "torch.nn.functional.max_pool2d": _MAXPOOL,
    "torch.max_pool2d": _MAXPOOL,
    "torch.nn.functional.max_pool2d_with_indices": _MAXPOOL,
    "torch.nn.functional.adaptive_max_pool2d": frozenset({"adaptive_max_pool2d"}),
    "torch.nn.functional.max_unpool2d": frozenset({"max_unpool2d"}),
    "torch.nn.functional.batch_norm": _BATCHNORM,
    "torch.batch_norm": _BATCHNORM,
    "torch.nn.functional.instance_norm": _BATCHNORM | {"instance_norm"},
    "torch.native_batch_norm": _BATCHNORM,
    "torch.instance_norm": _BATCHNORM | {"instance_norm"},
    "torch.nn.functional.layer_norm": _LAYERNORM,
    "torch.layer_norm": _LAYERNORM,
    "torch.native_layer_norm": _LAYERNORM,
    "torch.nn.functional.group_norm": _GROUPNORM,
    "torch.group_norm": _GROUPNORM,
    "torch.native_group_norm": _GROUPNORM,
    "torch.nn.functional.normalize": frozenset(),  # composite: a norm, clamp_min and div (function mode only)
    "torch.nn.functional.bilinear": frozenset({"_trilinear", "bilinear"}),
    "torch.nn.functional.linear": frozenset(),  # composite: mm/addmm (function mode only)
    "torch.nn.functional.dropout": frozenset({"native_dropout"}),  # else bernoulli_ + mul (function mode)
    "torch.dropout": frozenset({"native_dropout"}),
    "torch.dropout_": frozenset(),
    "torch.nn.functional.alpha_dropout": frozenset(),
    "torch.nn.functional.feature_alpha_dropout": frozenset(),
    "torch.nn.functional.cross_entropy": frozenset(
        {"cross_entropy_loss", "nll_loss_forward", "nll_loss2d_forward", "nll_loss", "nll_loss_nd"}
    ),
    "torch.nn.functional.nll_loss": frozenset({"nll_loss_forward", "nll_loss2d_forward", "nll_loss", "nll_loss_nd"}),
    "torch.nn.functional.log_softmax": frozenset({"_log_softmax", "log_softmax"}),
    # attention is softmax(q k^T) v: with k and v the identity, the softmax itself (the fused kernels run no _softmax)
    "torch.nn.functional.softmax": frozenset({"_softmax", "softmax", "_safe_softmax", *_ATTENTION}),
    "torch.nn.functional.multi_margin_loss": frozenset({"multi_margin_loss"}),
    "torch.numel": frozenset(),
    "torch.Tensor.numel": frozenset(),
    "torch.Tensor.nelement": frozenset(),  # no op
    "torch.Size.numel": frozenset(),  # a shape's own method: no op, and no mode sees it (the static scan does)
    "torch.optim": frozenset(),  # optimizers are Python: caught by the calling frame (see PACKAGES)
}
# Whole namespaces: the operators only they reach (the ATen functions PyTorch binds under torch._C._nn and
# torch._C._linalg), computed from this PyTorch at start-up.
NAMESPACES = {"torch.nn": "_nn", "torch.linalg": "_linalg"}
# Names that are the same operation under another spelling (x.nelement() is x.numel()).
SAME_OPS = [frozenset({"torch.numel", "torch.Tensor.numel", "torch.Tensor.nelement"})]
# Packages whose own Python code calling PyTorch counts as using them (an optimizer's step calls add_ from there).
PACKAGES = ("torch.nn", "torch.optim", "torch.linalg")

# Autograd, as the guard reports it (each is in grader.course.manifest.AUTOGRAD_NAMES).
AUTOGRAD = "torch.autograd"  # the engine ran, a graph was built, torch.autograd.* called
REQUIRES_GRAD = "torch.Tensor.requires_grad"  # requires_grad set (setattr, property, keyword)
REQUIRES_GRAD_ = "torch.Tensor.requires_grad_"
BACKWARD = "torch.Tensor.backward"
FUNC = "torch.func"  # a torch.func transform that differentiates (grad, vjp, jvp, ...)
GUARD_REMOVED = "grader.sandbox.guard"  # the record of a call that removed or disabled the guard
AUTOGRAD_CANON = {
    "torch.Tensor.backward": BACKWARD,
    "torch.Tensor.requires_grad_": REQUIRES_GRAD_,
    "torch._make_dual": AUTOGRAD,
    "torch._unpack_dual": AUTOGRAD,
    "torch.Tensor.register_hook": AUTOGRAD,
    "torch.Tensor.retain_grad": AUTOGRAD,
    "torch.Tensor.register_post_accumulate_grad_hook": AUTOGRAD,
}

AUTOGRAD_ALL = frozenset(
    {AUTOGRAD, REQUIRES_GRAD, REQUIRES_GRAD_, BACKWARD, FUNC, "torch.autograd.grad", "torch.autograd.backward"}
)

MAX_HITS = 20


def aten_ops(name: str) -> frozenset[str]:
    """The ATen operators `name` is detected by: those ATEN_OPS lists for it, else its own (`own_ops`); may be
    empty (a composite of generic operators is caught by name, by the function mode)."""
    if name in NAMESPACES:
        ns = getattr(torch._C, NAMESPACES[name])
        ops = {n for n in dir(ns) if not n.startswith("__")}
        if name == "torch.nn":
            ops |= {"nll_loss_forward", "nll_loss2d_forward", "max_pool2d_with_indices_backward"}
        return frozenset(ops)
    # a listed name's entry is final: torch.nn.functional.unfold is im2col, not aten::unfold (Tensor.unfold)
    return ATEN_OPS[name] if name in ATEN_OPS else own_ops(name)


# the prefix ATen gives the functions of a namespace: torch.linalg.norm is aten::linalg_norm
_OP_PREFIX = {"torch.linalg.": "linalg_", "torch.special.": "special_", "torch.fft.": "fft_"}


def own_ops(name: str) -> frozenset[str]:
    """The operators of this PyTorch that are `name` itself: the ATen operator of its name and its in-place form
    (`torch.nn.functional.embedding` -> embedding; `torch.Tensor.relu` -> relu, relu_). Empty for a module, a
    class, a property, or a name ATen does not have (`torch.nn.Linear`, `torch.Size.numel`)."""
    if not name.startswith("torch.") or name.startswith("torch.Size."):
        return frozenset()
    last = name.rsplit(".", 1)[-1]
    prefix = next((p for ns, p in _OP_PREFIX.items() if name.startswith(ns)), "")
    base = prefix + last.removesuffix("_")
    if not base.isidentifier() or not base[0].islower():
        return frozenset()
    return frozenset(op for op in (base, base + "_") if is_aten_op(op))


def is_aten_op(op: str) -> bool:
    """Whether this PyTorch's dispatcher has an ATen operator of that name (any overload)."""
    global _ATEN
    if _ATEN is None:
        _ATEN = frozenset(
            s.name.removeprefix("aten::") for s in torch._C._jit_get_all_schemas() if s.name.startswith("aten::")
        )
    return op in _ATEN


_ATEN: frozenset[str] | None = None


def watched_at_run_time(name: str) -> bool:
    """Whether the guard can see a use of `name` while the code runs: a PyTorch function, method, module, class or
    package. Not a shape's method (`torch.Size.numel`: a tuple's, which no mode of PyTorch's sees) nor a
    property or constant: for those the static scan of the source is the only rule."""
    import importlib

    if name.startswith("torch.Size."):
        return False
    parts = name.split(".")
    obj: Any = torch
    for i, part in enumerate(parts[1:], start=1):
        owner = obj
        obj = getattr(owner, part, None)
        if obj is None:
            try:
                obj = importlib.import_module(".".join(parts[: i + 1]))
            except ImportError:
                return False
        if isinstance(owner, type) and isinstance(vars(owner).get(part), (property, types.GetSetDescriptorType)):
            return False
    return callable(obj) or isinstance(obj, types.ModuleType)


def op_of(func: Any) -> str | None:
    """The ATen operator a `torch.ops.aten` callable is (`rnn_tanh_cell` for torch.ops.aten.rnn_tanh_cell and
    for its overload .default); None for anything else."""
    if not type(func).__module__.startswith("torch._ops"):
        return None
    qual = getattr(func, "_qualified_op_name", None)  # an OpOverloadPacket: "aten::embedding"
    if qual is None:
        packet = getattr(func, "overloadpacket", None)  # an OpOverload
        qual = getattr(packet, "_qualified_op_name", None)
    if not isinstance(qual, str) or not qual.startswith("aten::"):
        return None
    return qual.removeprefix("aten::")


def canonical(func: Any) -> str:
    """The public name of a PyTorch callable as the function mode receives it: `torch.cdist` for
    torch.functional.cdist and torch._C._VariableFunctions.cdist, `torch.Tensor.numel` for
    torch._C.TensorBase.numel, `torch.nn.functional.linear` for torch._C._nn.linear, ..."""
    if isinstance(func, types.MethodWrapperType):  # a property's __get__/__set__ (x.requires_grad = ...)
        owner = getattr(func, "__self__", None)
        return f"torch.Tensor.{getattr(owner, '__name__', '?')}.{func.__name__}"
    name = getattr(func, "__name__", None) or type(func).__name__
    qual = getattr(func, "__qualname__", None) or name
    module = getattr(func, "__module__", None) or ""
    if qual.startswith(("TensorBase.", "Tensor.", "_TensorBase.")) and module in ("", "torch._tensor", "torch"):
        return f"torch.Tensor.{name}"
    if qual.startswith("_VariableFunctionsClass.") or module in ("torch.functional", "torch._VF"):
        return f"torch.{name}"
    if module == "torch._C._nn":
        return f"torch.nn.functional.{name}"
    if module == "torch._C._linalg":
        return f"torch.linalg.{name.removeprefix('linalg_')}"
    if module == "torch._C._special":
        return f"torch.special.{name.removeprefix('special_')}"
    op = op_of(func)
    if op is not None:  # torch.ops.aten.x, or an overload of it: matched by its operator (see own_ops)
        return f"torch.ops.aten.{op}"
    if module.startswith("torch._ops"):  # another library's operator: the dispatch mode names what it runs
        return f"torch.ops.{getattr(func, '__name__', name)}"
    return f"{module}.{name}" if module else name
