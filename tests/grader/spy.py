"""A spy on what the judge sends into the sandbox, to show that held-out data stays with the judge.

`SandboxSpy` wraps `Sandbox._roundtrip` in the judge's process and keeps every tensor of every request (call
arguments, values sent with `ctx.put`, ...), with the request it travelled in. The helpers below look in those
tensors for the test labels (whole, or any run of `LABEL_RUN` consecutive labels) and for rows of the test inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from grader.sandbox.host import Sandbox

LABEL_RUN = 11  # a run of this many consecutive test labels found in a request counts as a leak


def tensors_in(value: Any) -> Iterator[torch.Tensor]:
    """The tensors in a request (lists of more than 10 ints count as tensors too)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from tensors_in(v)
    elif isinstance(value, (list, tuple)):
        if len(value) > 10 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            yield torch.tensor(value)
        else:
            for v in value:
                yield from tensors_in(v)


class SandboxSpy:
    def __init__(self, monkeypatch) -> None:
        self.sent: list[tuple[str, torch.Tensor]] = []  # (the request, e.g. "call predict"; a tensor it held)
        self.requests = 0
        original = Sandbox._roundtrip
        spy = self

        def roundtrip(sandbox, req, *args, **kwargs):
            spy.record(req)
            return original(sandbox, req, *args, **kwargs)

        monkeypatch.setattr(Sandbox, "_roundtrip", roundtrip)

    def record(self, req: dict) -> None:
        self.requests += 1
        target = req.get("target") if isinstance(req.get("target"), dict) else {}
        what = f"{req.get('op')} {target.get('attr', '')}".strip()
        for t in tensors_in(req):
            self.sent.append((what, t.detach().cpu()))

    def label_leaks(self, y_test: torch.Tensor) -> list[str]:
        """Requests holding y_test, or a run of LABEL_RUN consecutive test labels, in any integer tensor."""
        y = y_test.cpu().long().flatten()
        runs = {tuple(w.tolist()) for w in y.unfold(0, LABEL_RUN, 1)}
        found = []
        for what, t in self.sent:
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool or t.numel() < LABEL_RUN:
                continue
            flat = t.long().flatten()
            if any(tuple(w.tolist()) in runs for w in flat.unfold(0, LABEL_RUN, 1)):
                found.append(what)
        return found

    def row_leaks(self, rows: torch.Tensor, known: torch.Tensor | None = None) -> list[str]:
        """Requests holding a row of `rows` (compared as float32, row by row), leaving out rows that are also
        in `known` (e.g. a test image identical to a training image)."""

        def keys(t: torch.Tensor) -> set[bytes]:
            t = t.reshape(t.shape[0], -1).to(torch.float32).contiguous()
            return {r.numpy().tobytes() for r in t}

        secret = keys(rows) - (keys(known) if known is not None else set())
        width = rows[0].numel()
        found = []
        for what, t in self.sent:
            if not t.is_floating_point() or t.dim() < 2 or t[0].numel() != width:
                continue
            if keys(t) & secret:
                found.append(what)
        return found


SANDBOX_CALLS = {"call", "invoke", "method", "invoke_method", "put"}  # ctx's and the check files' own wrappers


def sandbox_calls_naming(source: str, names: set[str]) -> list[int]:
    """Lines of a check file where a call into the sandbox (ctx.call, ctx.put, ...) names one of `names` (a
    variable, or a string key such as data["y_test"]) in its arguments."""
    import ast

    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if name not in SANDBOX_CALLS:
            continue
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            if any(
                (isinstance(n, ast.Name) and n.id in names) or (isinstance(n, ast.Constant) and n.value in names)
                for n in ast.walk(arg)
            ):
                lines.append(node.lineno)
    return lines
