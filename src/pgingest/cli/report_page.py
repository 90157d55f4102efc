"""``pgingest report``: one run as a self-contained HTML page (styles and the timeline's SVG
inlined, nothing fetched): a timeline of its files (start, end, rows/s, status), the slowest
files, the schema changes it made, the rows it set aside with their lines, and its retries.
The page's frame is the template ``report.html`` next to this module."""

from __future__ import annotations

from datetime import datetime
from html import escape
from importlib import resources
from importlib.metadata import version
from string import Template
from typing import Any

from pgingest.cli.status_view import duration, parse_time, rate

SLOWEST = 10
"""Files listed under "Slowest files"."""

TIMELINE_WIDTH = 1200
LABEL_WIDTH = 260
DETAIL_WIDTH = 300
ROW_HEIGHT = 22
"""The timeline's geometry in pixels: the whole width, the file names' column on the left,
the figures' column on the right, one file's row."""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _local(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment.astimezone():%Y-%m-%d %H:%M:%S %Z}"


def _badge(status: str) -> str:
    return f'<span class="status {_e(status)}">{_e(status)}</span>'


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """An HTML table; ``rows`` hold HTML already escaped; ``numeric`` columns align right."""
    if not rows:
        return '<p class="none">None.</p>'
    numeric = numeric or set()
    head = "".join(
        f'<th class="num">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _file_times(
    data: dict[str, Any], run_start: datetime | None, run_end: datetime | None
) -> list[tuple[dict[str, Any], datetime | None, datetime | None, float | None]]:
    """Each file with its start and end in this run, and its seconds. A file that an earlier
    run tried first keeps that first start in the manifest: here it starts with this run."""
    out = []
    for f in data["files"]:
        start = parse_time(f["started_at"])
        if start is not None and run_start is not None:
            start = max(start, run_start)
        end = (
            parse_time(f["finished_at"])
            or parse_time(f.get("last_batch_at"))
            or (run_end if f["status"] != "success" else None)
        )
        seconds = (end - start).total_seconds() if start and end else None
        out.append((f, start, end, seconds))
    return out


def _timeline(
    timed: list[tuple[dict[str, Any], datetime | None, datetime | None, float | None]],
    run_start: datetime | None,
    run_end: datetime | None,
) -> str:
    """An SVG of one bar per file over the run's time, coloured by status."""
    placed = [(f, s, e, sec) for f, s, e, sec in timed if s is not None]
    if not placed or run_start is None:
        return '<p class="none">No file was loaded.</p>'
    ends = [e for _, _, e, _ in placed if e is not None]
    last = max([*ends, *([run_end] if run_end else [])], default=run_start)
    span = max(0.001, (last - run_start).total_seconds())
    plot = TIMELINE_WIDTH - LABEL_WIDTH - DETAIL_WIDTH
    top = 24
    height = top + ROW_HEIGHT * len(placed) + 10
    parts = [
        f'<svg width="{TIMELINE_WIDTH}" height="{height}"'
        f' viewBox="0 0 {TIMELINE_WIDTH} {height}" role="img" aria-label="timeline">'
    ]
    for i in range(6):  # the time axis: 0 .. span in five steps
        x = LABEL_WIDTH + plot * i / 5
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height}"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle">'
            f"+{duration(span * i / 5) or '0 s'}</text>"
        )
    for row, (f, start, end, seconds) in enumerate(placed):
        y = top + row * ROW_HEIGHT
        x0 = LABEL_WIDTH + plot * (start - run_start).total_seconds() / span
        x1 = LABEL_WIDTH + plot * ((end or last) - run_start).total_seconds() / span
        width = max(2.0, x1 - x0)
        name = str(f["path"]).rsplit("/", 1)[-1]
        if len(name) > 40:
            name = "…" + name[-39:]
        speed = rate(int(f["rows"]), seconds)
        label = f"{int(f['rows']):,} rows" + (f", {speed} rows/s" if speed else "")
        tip = (
            f"{f['path']} -> {f['table_schema']}.{f['table_name']}: {f['status']},"
            f" {_local(start)} to {_local(end)}, {duration(seconds)}, {label}"
        )
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">{_e(name)}</text>'
            f'<rect class="{_e(f["status"])}" x="{x0:.1f}" y="{y + 3}" width="{width:.1f}"'
            f' height="{ROW_HEIGHT - 6}" rx="3"><title>{_e(tip)}</title></rect>'
        )
        parts.append(
            f'<text x="{LABEL_WIDTH + plot + 16}" y="{y + 15}">'
            f"{_e(', '.join(x for x in (f['status'], duration(seconds), label) if x))}</text>"
        )
    parts.append(
        f'<line class="axis" x1="{LABEL_WIDTH}" y1="{top - 4}" x2="{LABEL_WIDTH}" y2="{height}"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def render_report(data: dict[str, Any]) -> str:
    """The HTML page of :func:`pgingest.api.run_report_async`'s data."""
    run = data["run"]
    start, end = parse_time(run["started_at"]), parse_time(run.get("finished_at"))
    seconds = (end - start).total_seconds() if start and end else None
    timed = _file_times(data, start, end)
    rejects_total = data["rejects_total"]
    cards = [
        ("started", _local(start)),
        ("duration", duration(seconds) or "(not finished)"),
        ("files loaded", f"{run['files_loaded']:,}"),
        ("skipped", f"{run['files_skipped']:,}"),
        ("failed", f"{run['files_failed']:,}"),
        ("rows", f"{run['rows']:,}"),
        ("rows/s", rate(run["rows"], seconds) or "-"),
        ("rejected rows", f"{rejects_total:,}"),
        ("retries", f"{len(data['retries']):,}"),
    ]
    files = _table(
        [
            "file",
            "table",
            "status",
            "start",
            "end",
            "seconds",
            "rows",
            "rows/s",
            "rejects",
            "error",
        ],
        [
            [
                _e(f["path"]),
                _e(f"{f['table_schema']}.{f['table_name']}"),
                _badge(f["status"]),
                _e(_local(s)),
                _e(_local(e)),
                _e(f"{sec:.2f}" if sec is not None else ""),
                _e(f"{int(f['rows']):,}"),
                _e(rate(int(f["rows"]), sec)),
                _e(f"{int(f['rejects']):,}"),
                f'<span class="error">{_e(f["error"])}</span>' if f["error"] else "",
            ]
            for f, s, e, sec in timed
        ],
        numeric={5, 6, 7, 8},
    )
    slow = sorted((t for t in timed if t[3] is not None), key=lambda t: -(t[3] or 0.0))
    slowest = _table(
        ["file", "table", "seconds", "rows", "rows/s", "status"],
        [
            [
                _e(f["path"]),
                _e(f"{f['table_schema']}.{f['table_name']}"),
                _e(f"{sec:.2f}"),
                _e(f"{int(f['rows']):,}"),
                _e(rate(int(f["rows"]), sec)),
                _badge(f["status"]),
            ]
            for f, _, _, sec in slow[:SLOWEST]
        ],
        numeric={2, 3, 4},
    )
    changes = _table(
        ["when", "table", "change", "column", "old type", "new type", "by file"],
        [
            [
                _e(_local(parse_time(c["at"]))),
                _e(f"{c['table_schema']}.{c['table_name']}"),
                _e(c["change"] + (" (reverted)" if c["reverted"] else "")),
                _e(c["column_name"]),
                _e(c["old_type"]),
                _e(c["new_type"]),
                _e(c["path"]),
            ]
            for c in data["schema_changes"]
        ],
    )
    rejects = _table(
        ["file", "line", "column", "reason"],
        [
            [
                _e(r["path"]),
                _e(r["line"]),
                _e(r["column_name"]),
                f"{_e(r['reason'])}<pre>{_e(r['raw'])}</pre>",
            ]
            for r in data["rejects"]
        ],
        numeric={1},
    )
    if rejects_total > len(data["rejects"]):
        rejects += (
            f'<p class="none">The first {len(data["rejects"]):,} of {rejects_total:,}:'
            " <code>pgingest rejects FILE</code> lists every one.</p>"
        )
    retries = _table(
        ["when", "file", "batch", "attempt", "waited", "error class", "error"],
        [
            [
                _e(_local(parse_time(r["at"]))),
                _e(r["path"] or "(connecting)"),
                _e(r["batch"]),
                _e(r["attempt"]),
                _e(f"{r['delay']:.2f} s"),
                _e(r["error_class"]),
                f'<span class="error">{_e(r["error"])}</span>',
            ]
            for r in data["retries"]
        ],
        numeric={2, 3, 4},
    )
    template = Template(resources.files("pgingest.cli").joinpath("report.html").read_text())
    return template.substitute(
        version=_e(version("pgingest")),
        title=_e(f"pgingest run {run['id']}"),
        status_badge=_badge(run["status"]),
        subtitle=_e(f"on {run.get('host') or '?'}: {', '.join(map(str, run.get('paths') or []))}"),
        cards="".join(
            f'<div class="card"><div class="label">{_e(k)}</div>'
            f'<div class="value">{_e(v)}</div></div>'
            for k, v in cards
        ),
        timeline=_timeline(timed, start, end),
        slowest=slowest,
        files=files,
        schema_changes=changes,
        rejects=rejects,
        retries=retries,
    )
