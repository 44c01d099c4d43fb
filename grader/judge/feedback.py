"""The judge's feedback sentences about a failed request and a broken rule, and rule hits as data
(`hit_record`: what CheckResult.rule_hits holds)."""

from __future__ import annotations

from grader.course.manifest import AUTOGRAD_NAMES
from grader.sandbox.guard import describe_hit
from grader.sandbox.isolation import SandboxError
from grader.sandbox.lowering import GUARD_REMOVED

# what PyTorch says when code asks for CUDA on a machine without it
_NO_CUDA = ("Found no NVIDIA driver", "Torch not compiled with CUDA enabled", "No CUDA GPUs are available")


def describe_error(err: SandboxError, function: str) -> str:
    """Feedback for a call that failed inside the sandbox."""
    where = ""
    if err.where:
        w = err.where[-1]
        where = f"\n  at {w['file']} line {w['line']}, in {w['function']}: {w['code'].strip()}"
    if err.kind == "exception" and err.type_name == "NotImplementedError":
        raiser = err.where[-1]["function"] if err.where else ""
        if not raiser or raiser == "<module>" or function.startswith(raiser):
            text = f"{function} is not implemented yet (it raises NotImplementedError)."
        elif raiser.startswith(function.split(".")[0] + "."):  # a method of the class being checked
            text = f"{raiser} is not implemented yet (it raises NotImplementedError)."
        else:
            text = f"{raiser} is not implemented yet (it raises NotImplementedError), and {function} calls it."
    elif err.kind == "exception" and (
        err.type_name == "MemoryError" or "out of memory" in err.message or "can't allocate memory" in err.message
    ):
        text = (
            f"{function} ran out of memory: it allocates more than the sandbox allows (look for a large "
            f"intermediate tensor).\n  {err.type_name}: {err.message[:300]}{where}"
        )
    elif err.kind == "exception" and any(s in err.message for s in _NO_CUDA):
        text = (
            f"{function} raised {err.type_name}: {err.message[:300]}{where}\n"
            "  The grader runs your code on a CPU: it asked for CUDA. Take the device from the inputs "
            "(`torch.zeros(n, device=x.device, dtype=x.dtype)`, `t.to(x.device)`) instead of writing 'cuda', "
            "and it runs on a CPU and on a GPU alike."
        )
    elif err.kind == "exception":
        text = f"{function} raised {err.type_name}: {err.message}{where}"
    elif err.kind == "exit":
        code = err.message if err.type_name == "SystemExit" else ""
        text = (
            f"{function} called sys.exit({code}); your code must not exit the program.{where}"
            if err.type_name == "SystemExit"
            else err.message
        )
    elif err.kind == "timeout":
        text = (
            f"{err.message}: {function} may loop forever, or be far slower than it should be "
            "(a loop where vectorised code was asked for?)"
        )
    else:
        text = err.message
    if err.output.strip():
        text += "\n  output before the failure:\n    " + "\n    ".join(err.output.strip().splitlines()[-8:])
    return text


def hit_record(rule: str, name: str, *, file: str | None, line: int | None, function: str | None, found: str) -> dict:
    """One rule hit as `CheckResult.rule_hits` holds it: the rule ("forbidden": a forbidden name, "guard": the
    guard removed, "dynamic": a door the grader cannot watch, "import": a module outside the manifest's
    allowed_imports, "loops": a loop beyond those allowed, "refused": a run-time wall of the worker,
    grader.sandbox.audit, with the event as the name), the name found, where (file, line, the student's function)
    and how it was `found` ("source": reading the submitted file; "run": the guard, while the code ran)."""
    return {"rule": rule, "name": name, "file": file, "line": line, "function": function, "found": found}


def guard_hits(hits: list[dict], called: str) -> list[dict]:
    """The guard's records of a call (grader.sandbox.guard.hit_records) as rule hits."""
    return [
        hit_record(
            "guard" if h["name"] == GUARD_REMOVED else "forbidden",
            h["name"],
            file=h.get("file"),
            line=h.get("line"),
            function=h.get("function") or called,
            found="run",
        )
        for h in hits
    ]


def reasons(names: list[str], why: dict[str, str]) -> str:
    """' (torch.cdist: it computes the distances you are asked to compute)' for the names with a reason."""
    said = [f"{n}: {why[n]}" for n in dict.fromkeys(names) if why.get(n)]
    return f" ({'; '.join(said)})" if said else ""


def forbidden_feedback(
    hits: list[dict], called: str, graded: str, no_autograd: bool = False, why: dict[str, str] | None = None
) -> str:
    """`Conv.forward called torch.nn.functional.conv2d (line 12 of convolutional_networks.py), which Conv may
    not use in this assignment.` One sentence per student function the guard found a use in."""
    if any(h["name"] == GUARD_REMOVED for h in hits):
        return (
            f"{called} removed or disabled the grader's guard (the PyTorch modes that watch for forbidden "
            "calls while your code runs); your code must leave PyTorch's mode stacks as it found them."
        )
    by_function: dict[str, list[str]] = {}
    for h in hits:
        uses = by_function.setdefault(h.get("function") or called, [])
        if describe_hit(h) not in uses:
            uses.append(describe_hit(h))
    said = "; ".join(f"{who} called {', '.join(uses)}" for who, uses in by_function.items())
    text = f"{said}, which {graded} may not use in this assignment{reasons([h['name'] for h in hits], why or {})}."
    if no_autograd and any(h["name"] in AUTOGRAD_NAMES for h in hits):
        text += " Gradients are computed by hand here: no requires_grad, .backward(), torch.autograd or torch.func."
    return text


def describe_refusals(file: str, records: list[dict]) -> str:
    """Feedback for a graded file whose code the worker's run-time walls refused (grader.sandbox.audit): one
    refusal costs every function of the file, as a door the static scan finds does."""
    said = []
    for r in records[:5]:
        where = f"line {r['line']}" if r.get("line") else "a call"
        if r.get("function"):
            where += f" ({r['function']})"
        said.append(f"{where} {r['what']}" if r.get("line") else str(r["what"]))
    more = f" and {len(records) - 5} more" if len(records) > 5 else ""
    return (
        f"{file}: your code was stopped while it ran: {'; '.join(said)}{more}. Graded code may not reach into the "
        "grader, PyTorch's internals or the interpreter (frames, gc, tracing, ctypes, changing classes or "
        f"functions that are not yours), nor start processes, so no function of {file} earns points. Use only "
        "what your functions are given and the modules the assignment allows."
    )
