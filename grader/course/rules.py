"""The rules a student reads are the rules the grader enforces: both come from the manifest.

`rules_block(manifest, part)` renders a part's rules (forbidden calls and why, loop limits, the autograd ban, the
modules a graded file may use) as the lines each graded module's docstring carries verbatim (a test compares them);
`rules_table(manifest)` is what `grader list --rules` prints.
"""

from __future__ import annotations

import textwrap

from grader.course.manifest import DEFAULT_IMPORTS, Manifest, Part

WIDTH = 100  # the block's lines fit a docstring under the project's line length
HEADER = "Rules the grader enforces in this file (see `grader list --rules`):"
AUTOGRAD_RULE = "no autograd (requires_grad, .backward(), torch.autograd, torch.func): gradients are computed by hand."
NO_REASON = "forbidden in this assignment"


LOOP_KINDS = "for, while, comprehensions, map, filter, functools.reduce, itertools or recursion"


def loops_rule(allowed: int) -> str:
    limit = "no loops" if allowed == 0 else f"at most {allowed} loop{'s' if allowed > 1 else ''}"
    return f"{limit} ({LOOP_KINDS}; loops in the helpers it calls count too)."


def shown_modules(allowed: list[str] | set[str]) -> str:
    """`torch, math, ..., a1_knn, dlcv`: the modules a graded file may use, as a student reads them (the
    course's defaults in their order, then the kit's packages and the manifest's additions)."""
    allowed = set(allowed)
    first = [m for m in DEFAULT_IMPORTS if m in allowed and m != "__future__"]
    return ", ".join([*first, *sorted(allowed - set(DEFAULT_IMPORTS))])


def imports_rule(m: Manifest) -> str:
    return (
        f"only the modules {shown_modules(m.allowed_imports)} (a use of another module holds back every function "
        "of the file; an import that nothing uses only earns a warning)."
    )


def forbidden_rule(names: list[str], why: dict[str, str]) -> list[str]:
    """`a, b: reason.` items, names sharing a reason on one item, in the order the manifest lists them."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(why.get(n, NO_REASON), []).append(n)
    return [f"{', '.join(ns)}: {reason.rstrip('.')}." for reason, ns in groups.items()]


def _grouped(items: list[tuple[str, str]]) -> list[tuple[list[str], str]]:
    """(function, rule) pairs -> (functions, rule) with the functions sharing a rule on one line, in order."""
    out: dict[str, list[str]] = {}
    for fn, rule in items:
        out.setdefault(rule, []).append(fn)
    return [(fns, rule) for rule, fns in out.items()]


def part_rules(m: Manifest, part: Part) -> list[tuple[str, list[str]]]:
    """(who, rule items) for one part: forbidden calls (functions with the same list share an entry), loop limits
    (likewise), the autograd ban. A forbidden entry has one item per reason; the others one item."""
    entries: list[tuple[str, list[str]]] = []
    forbidden: dict[tuple[str, ...], list[str]] = {}
    for f in part.functions:
        if part.forbidden.get(f):
            forbidden.setdefault(tuple(part.forbidden[f]), []).append(f)
    entries += [
        (", ".join(fns) + " may not use", forbidden_rule(list(names), m.why)) for names, fns in forbidden.items()
    ]
    loops: dict[int, list[str]] = {}
    for f in part.functions:
        if f in part.max_loops:
            loops.setdefault(part.max_loops[f], []).append(f)
    entries += [(", ".join(fns), [loops_rule(n)]) for n, fns in loops.items()]
    if m.forbid_autograd:
        entries.append(("every function", [AUTOGRAD_RULE]))
    entries.append(("the file may use", [imports_rule(m)]))
    return entries


def _wrap(text: str, first: str, rest: str) -> list[str]:
    return textwrap.wrap(
        text, width=WIDTH, initial_indent=first, subsequent_indent=rest, break_long_words=False, break_on_hyphens=False
    )


def rules_block(m: Manifest, part: Part) -> str:
    """The block a graded module's docstring carries: a header, then `- who: rule` lines, or `- who may not use:`
    with one `  - names: reason.` line per reason; wrapped at WIDTH. "" when the part has no rules."""
    entries = part_rules(m, part)
    if not entries:
        return ""
    out = [HEADER]
    for who, items in entries:
        if who.endswith(" may not use"):
            out += _wrap(f"{who}:", "- ", "  ")
            for item in items:
                out += _wrap(item, "  - ", "    ")
        else:
            out += _wrap(f"{who}: {items[0]}", "- ", "  ")
    return "\n".join(out)


def rules_table(m: Manifest) -> str:
    """Per part and function: what it may not use and why, and how many loops it may have."""
    out = [f"{m.name}: {m.title}"]
    if m.forbid_autograd:
        out.append("  every graded function: " + AUTOGRAD_RULE)
    out.append("  every graded file may use " + imports_rule(m))
    for part in m.parts:
        out.append(f"  {part.name} ({part.file})")
        for f in part.functions:
            names, loops = part.forbidden.get(f, []), part.max_loops.get(f)
            if not names and loops is None:
                continue
            out.append(f"    {f}")
            if loops is not None:
                out.append(f"      loops: {'none' if loops == 0 else f'at most {loops}'}")
            for n in names:
                out.append(f"      {n:<42} {m.why.get(n, NO_REASON)}")
        if not any(part.forbidden.get(f) or f in part.max_loops for f in part.functions):
            out.append("    (no rules beyond the assignment's)")
    return "\n".join(out)
