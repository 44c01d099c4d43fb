"""Sanitising a notebook's untrusted content for the report: outputs keep only plain text, sanitised HTML and
Markdown, and PNG/JPEG images (checked to be base64); Markdown and HTML are sanitised after rendering (bleach: no
script, no event handler, no style, links only to http(s), mailto and anchors, images only inline); the finished
page is filtered again (`finish_page`: no script, frame, object, form, base or event-handler attribute anywhere)
and starts with a Content-Security-Policy (CSP) that forbids every script and every request outside the file."""

from __future__ import annotations

import base64
import binascii
import contextlib
import html
import math
import re
from html.parser import HTMLParser
from typing import Any

from grader.reports.formats import clean_text

MAX_TEXT_CHARS = 20_000  # of one text output in the report (the rest is cut, with a note)
MAX_TRACEBACK_LINES = 60
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

REPORT_CSS = """
.celltag_dlcv-page, .celltag_dlcv-question { break-before: page; }
.celltag_dlcv-answer { border-left: 4px solid #2b7bb9; padding-left: 0.6em; background: #f4f9fd; }
.celltag_dlcv-flag { border-left: 4px solid #c0392b; background: #fdf1f0; padding-left: 0.6em; }
.celltag_dlcv-missing { border-left: 4px solid #c0392b; background: #fdf1f0; padding-left: 0.6em; }
table.dlcv { border-collapse: collapse; margin: 0.5em 0; }
table.dlcv td, table.dlcv th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; vertical-align: top;
                                overflow-wrap: anywhere; }
pre.dlcv-feedback { white-space: pre-wrap; background: #f7f7f7; padding: 0.4em; }
@media print { .jp-Cell { break-inside: auto; } }
"""

# -- sanitising ---------------------------------------------------------------------------------------------------

_TAGS = [
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "code",
    "dd",
    "del",
    "details",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "samp",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
    "var",
]
_IMAGE_URI = re.compile(r"^data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]*$")
_LINK = re.compile(r"^(https?:|mailto:|#)", re.IGNORECASE)
_ID = re.compile(r"^[A-Za-z0-9_:=.-]{1,100}$")
# the report's own anchors (#cell-id=..., dlcv-...) and cell-tag classes: never from a student's HTML
_OWN_ID = re.compile(r"^(cell-id=|dlcv-)")
_OWN_CLASS = re.compile(r"(^|\s)celltag_", re.IGNORECASE)
# cells the report writes itself, holding no student text but escaped text: their own ids stay
OWN_CELLS = frozenset({"dlcv-header", "dlcv-scores", "dlcv-problems", "dlcv-feedback", "dlcv-hidden", "dlcv-answers"})
_STRIPPED_WITH_CONTENT = re.compile(
    r"<(script|style|template|iframe|object|embed|noscript|textarea|title|xmp)\b"
    r"[^>]*>.*?</\1\s*>",
    re.IGNORECASE | re.DOTALL,
)


def _attribute(tag: str, name: str, value: str, own: bool = False) -> bool:
    if name == "class":
        return own or not _OWN_CLASS.search(value)
    if name in ("title", "align", "colspan", "rowspan", "alt", "width", "height"):
        return not (name in ("width", "height", "colspan", "rowspan") and not value.strip().isdigit())
    if name == "id":
        return bool(_ID.match(value)) and (own or not _OWN_ID.match(value))
    if tag == "a" and name == "href":
        return bool(_LINK.match(value.strip()))
    if tag == "img" and name == "src":
        return bool(_IMAGE_URI.match(value.strip()))
    return False


def clean_html(fragment: Any, own: bool = False) -> str:
    """Untrusted HTML (a rendered Markdown cell, an HTML output) without anything that runs or loads: only the
    tags of text, tables and inline images, no event handlers, no style, links to http(s), mailto and anchors;
    no id or class that could pass for the report's own anchors and boxes unless `own` (the report's own cells)."""
    import bleach

    text = fragment.decode("utf-8", "replace") if isinstance(fragment, bytes) else str(fragment)
    text = _STRIPPED_WITH_CONTENT.sub("", clean_text(text))
    return bleach.Cleaner(
        tags=_TAGS,
        attributes=lambda tag, name, value: _attribute(tag, name, value, own),
        protocols=["http", "https", "mailto", "data"],
        strip=True,
        strip_comments=True,
    ).clean(text)


class _FinalPass(HTMLParser):
    """The whole page, re-emitted: elements that run or load things dropped with their content, event
    handlers and script URLs dropped from every tag. Our own CSS (style elements) stays."""

    DROP = frozenset(
        {
            "script",
            "iframe",
            "object",
            "embed",
            "applet",
            "frame",
            "frameset",
            "form",
            "base",
            "link",
            "noscript",
            "template",
            "portal",
            "math-script",
        }
    )
    VOID = frozenset(
        {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
    )
    URL_ATTRS = frozenset(
        {
            "href",
            "src",
            "action",
            "formaction",
            "xlink:href",
            "background",
            "poster",
            "data",
            "srcset",
            "ping",
            "lowsrc",
            "dynsrc",
            "codebase",
            "cite",
            "longdesc",
            "usemap",
            "manifest",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []
        self.skip = 0  # depth inside a dropped element

    def _attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> str:
        kept = []
        for name, value in attrs:
            name = name.lower()
            v = value or ""
            if name.startswith("on") or name in ("srcdoc", "formaction", "http-equiv"):
                continue
            if name in self.URL_ATTRS:
                if not (_LINK.match(v.strip()) or (tag == "img" and name == "src" and _IMAGE_URI.match(v.strip()))):
                    continue
            if not re.fullmatch(r"[a-z_:][-a-z0-9_:.=]*", name):
                continue
            kept.append(f' {name}="{html.escape(v, quote=True)}"' if value is not None else f" {name}")
        return "".join(kept)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        tag = tag.lower()
        if tag in self.DROP or (tag == "meta" and any(k.lower() == "http-equiv" for k, _ in attrs)):
            if tag not in self.VOID:
                self.skip += 1
            return
        if not self.skip:
            self.out.append(f"<{tag}{self._attrs(tag, attrs)}>")

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        tag = tag.lower()
        if tag in self.DROP or (tag == "meta" and any(k.lower() == "http-equiv" for k, _ in attrs)):
            return
        if not self.skip:
            self.out.append(f"<{tag}{self._attrs(tag, attrs)} />")

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        if tag in self.DROP:
            if tag not in self.VOID:
                self.skip = max(0, self.skip - 1)
            return
        if not self.skip:
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)

    def handle_entityref(self, name: str) -> None:
        if not self.skip:
            self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        if not self.skip:
            self.out.append(f"&#{name};")

    def handle_decl(self, decl: str) -> None:
        if decl.lower().startswith("doctype"):
            self.out.append(f"<!{decl}>")

    def handle_comment(self, data: str) -> None:
        pass

    def handle_pi(self, data: str) -> None:
        pass

    def unknown_decl(self, data: str) -> None:
        pass


def finish_page(page: str) -> str:
    """The exported page, filtered once more, with the Content-Security-Policy first in its head and the
    report's CSS last."""
    p = _FinalPass()
    p.feed(page)
    p.close()
    out = "".join(p.out)
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
    out, n = re.subn(r"<head>", f"<head>\n{meta}", out, count=1, flags=re.IGNORECASE)
    if not n:
        out = f"<!DOCTYPE html>\n<html><head>{meta}</head><body>{out}</body></html>"
    return re.sub(r"</head>", f"<style>{REPORT_CSS}</style>\n</head>", out, count=1, flags=re.IGNORECASE)


def cut_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    text = clean_text(text)
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... (output cut: {len(text) - limit:,} more characters not shown)"


def _b64(value: Any) -> str | None:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9+/=\s]*", value):
        return None
    with contextlib.suppress(binascii.Error, ValueError):
        base64.b64decode("".join(value.split()), validate=True)
        return value
    return None


def clean_output(o: Any) -> Any:
    """One output of a student's cell, reduced to what the report shows safely (None to drop it)."""
    import nbformat

    kind = o.get("output_type")
    if kind == "stream":
        name = o.get("name") if o.get("name") in ("stdout", "stderr") else "stdout"
        return nbformat.v4.new_output("stream", name=name, text=cut_text(str(o.get("text", ""))))
    if kind == "error":
        tb = [clean_text(str(t)) for t in (o.get("traceback") or [])][-MAX_TRACEBACK_LINES:]
        return nbformat.v4.new_output(
            "error",
            ename=cut_text(str(o.get("ename", "")), 200),
            evalue=cut_text(str(o.get("evalue", "")), 2000),
            traceback=[cut_text("\n".join(tb), MAX_TEXT_CHARS)],
        )
    if kind not in ("display_data", "execute_result"):
        return None
    data = o.get("data") or {}
    if not isinstance(data, dict):
        return None
    kept: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for key in ("image/png", "image/jpeg"):
        good = _b64(data.get(key))
        if good:
            kept[key] = good
            m = (o.get("metadata") or {}).get(key)
            if isinstance(m, dict):
                size = {k: int(v) for k, v in m.items() if k in ("width", "height") and _size(v)}
                if size:
                    meta[key] = size
    if isinstance(data.get("text/html"), (str, list)):
        value = data["text/html"]
        kept["text/html"] = clean_html("".join(value) if isinstance(value, list) else value)
    if isinstance(data.get("text/markdown"), str):
        kept["text/markdown"] = cut_text(data["text/markdown"])
    plain = data.get("text/plain")
    if isinstance(plain, (str, list)):
        kept["text/plain"] = cut_text("".join(plain) if isinstance(plain, list) else plain)
    dropped = sorted(k for k in data if k not in kept)
    if not kept:
        kept["text/plain"] = f"(an output of type {', '.join(dropped)[:200]} is not shown in the report)"
    if kind == "execute_result":
        return nbformat.v4.new_output(
            "execute_result",
            data=kept,
            metadata=meta,
            execution_count=o.get("execution_count") if isinstance(o.get("execution_count"), int) else None,
        )
    return nbformat.v4.new_output("display_data", data=kept, metadata=meta)


def _size(v: Any) -> bool:
    """Whether `v` is a sensible image width or height (the kernel's JSON allows Infinity and NaN)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 < v < 100_000


_TAG = re.compile(r"^[A-Za-z0-9_:.-]{1,60}$")


def clean_attachments(cell: Any) -> dict[str, dict[str, str]]:
    """A Markdown cell's pasted images that the report shows: PNG, JPEG and GIF, checked to be base64."""
    attachments = {}
    bundles = cell.get("attachments") or {}
    for name, bundle in bundles.items() if isinstance(bundles, dict) else ():
        if isinstance(bundle, dict) and _TAG.match(str(name)):
            good = {k: v for k, v in bundle.items() if k in ("image/png", "image/jpeg", "image/gif") and _b64(v)}
            if good:
                attachments[str(name)] = good
    return attachments


def clean_cell(cell: Any, cell_id: str) -> Any:
    """A student's cell for the report: safe outputs, no metadata but plain tags, a fresh id."""
    import nbformat

    tags = [
        t
        for t in (cell.get("metadata", {}).get("tags") or [])
        if isinstance(t, str) and _TAG.match(t) and not t.startswith("dlcv-")
    ]
    meta = {"tags": tags} if tags else {}
    source = clean_text(cell.get("source", ""))
    if cell.cell_type == "code":
        new = nbformat.v4.new_code_cell(source, metadata=meta)
        new.outputs = [c for c in (clean_output(o) for o in cell.get("outputs", [])) if c is not None]
        count = cell.get("execution_count")
        new.execution_count = count if isinstance(count, int) else None
    elif cell.cell_type == "markdown":
        new = nbformat.v4.new_markdown_cell(source, metadata=meta)
        attachments = clean_attachments(cell)
        if attachments:
            new.attachments = attachments
    else:  # a raw cell is shown as text, never passed through
        new = nbformat.v4.new_markdown_cell(_indent(source) or "(an empty raw cell)", metadata=meta)
    new.id = cell_id
    return new


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.split("\n")) if text.strip() else ""
