"""The HTML building blocks of the `pltv report` page: sections, tables, inline SVG charts, the page itself.

Everything is inline (styles, charts as SVG with text drawn as paths) and the page's Content-Security-Policy
forbids loading anything, so a page that tried to fetch would fail loudly in the browser rather than leak.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Section:
    key: str
    title: str
    flags: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    unavailable: str | None = None  # "no readout available: <reason>"


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1b1b1b;background:#f6f7f9}
header{background:#16324f;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;opacity:.9;font-size:13px}main{max-width:1180px;margin:0 auto;padding:12px 24px 40px}
nav{margin:10px 0 0;font-size:13px}nav a{color:#cfe3ff;margin-right:4px}nav .badge{background:#ef6c00;color:#fff;border-radius:8px;padding:0 6px;margin-right:14px;font-size:11px}nav a:not(:has(+ .badge)){margin-right:14px}
section{background:#fff;border:1px solid #dde2e8;border-radius:8px;margin:18px 0;padding:14px 22px}
section h2{margin:4px 0 6px;font-size:18px;color:#16324f}p.good{color:#2e5e2e;margin:4px 0 10px;font-style:italic}
ul.flags{margin:6px 0 12px;padding:0;list-style:none}ul.flags li{background:#fff4e5;border-left:4px solid #ef6c00;padding:5px 10px;margin:4px 0}
p.ok{background:#edf7ed;border-left:4px solid #2e7d32;padding:5px 10px}
p.na{background:#eef1f5;border-left:4px solid #7a8696;padding:8px 12px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:12.5px}th,td{border-bottom:1px solid #e3e7ec;padding:3px 10px;text-align:right}
th{background:#f1f4f7;font-weight:600}td.l,th.l{text-align:left}td.l{white-space:nowrap}figure{margin:8px 0}figure svg{max-width:100%;height:auto}
figcaption{font-size:12px;color:#555}h3{font-size:14px;margin:14px 0 4px;color:#333}.small{font-size:12px;color:#555}
"""


def escape(value: Any) -> str:
    return html.escape(str(value))


def html_table(
    frame: pd.DataFrame, *, formats: dict[str, Callable[[Any], str]] | None = None, left=()
) -> str:
    formats = formats or {}
    head = "".join(f'<th class="{"l" if c in left else ""}">{escape(c)}</th>' for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record, strict=True):
            text = formats[column](value) if column in formats else fmt(value)
            cells.append(f'<td class="{"l" if column in left else ""}">{escape(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d}"
    return str(value)


class Charts:
    """Figures to inline SVG, each with its own id prefix."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, fig, caption: str) -> str:
        from pltv.plots import to_svg

        self.n += 1
        svg = to_svg(fig, prefix=f"c{self.n}-")
        svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(caption)}" ', 1)
        return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def render_page(sections: Iterable[Section], facts: Mapping[str, str], good: Mapping[str, str]) -> str:
    """The self-contained page: a header with ``facts`` and a link per section (with its flag count), then
    each section: its title, what ``good`` looks like, its flags (or that nothing is flagged), its body."""
    sections = list(sections)
    nav = "".join(
        f'<a href="#{s.key}">{escape(s.title)}</a>'
        + (f'<span class="badge">⚠ {len(s.flags)}</span>' if s.flags else "")
        for s in sections
    )
    header = " · ".join(f"{escape(k)}: {escape(v)}" for k, v in facts.items())
    parts = []
    for s in sections:
        flags = (
            '<ul class="flags">' + "".join(f"<li>⚠ {escape(f)}</li>" for f in s.flags) + "</ul>"
            if s.flags
            else ('<p class="ok">✓ Nothing flagged.</p>' if s.unavailable is None else "")
        )
        body = f'<p class="na">{escape(s.unavailable)}</p>' if s.unavailable else ""
        parts.append(
            f'<section id="{s.key}"><h2>{escape(s.title)}</h2><p class="good">{escape(good[s.key])}</p>'
            f"{flags}{body}{''.join(s.body)}</section>"
        )
    total = sum(len(s.flags) for s in sections)
    summary = f"{total} flag(s) to look at" if total else "nothing flagged"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>pLTV signal report · {escape(facts.get('generated', ''))}</title><style>{CSS}</style></head><body>"
        f"<header><h1>pLTV signal report</h1><p>{header}</p><p><b>{escape(summary)}</b></p><nav>{nav}</nav></header>"
        f'<main>{"".join(parts)}<p class="small">Written by <code>pltv report</code>: one file, nothing fetched; '
        "no identifier, hash or token is on this page — only counts, shares and values.</p></main></body></html>\n"
    )
