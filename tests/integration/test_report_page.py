"""``pgingest report RUN --html FILE`` rendered by a real browser (Debian's headless
Chromium): the page loads with no console message and no request off the machine, its
screenshot is drawn, and its visible text holds the run's timeline, slowest files, schema
changes, rejected rows with their lines and the retries a cut connection caused.

Where the browser is absent the test is skipped with the reason; under ``CI=true`` (where
``.ci/run`` installs it) it fails instead."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_retries import CuttingProxy, via_proxy

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser")
BOUND_SECONDS = 60


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    reason = (
        "no headless Chromium on this machine (apt-get install -y chromium-headless-shell):"
        " the report page is not checked in a browser"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def chromium(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Open ``page`` in headless Chromium with every host name unresolvable (a request off
    the machine fails, and says so on the console) and its console logged to stderr."""
    return subprocess.run(
        [
            browser(),
            "--no-sandbox",  # tests run as root here
            "--disable-gpu",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--enable-logging=stderr",
            "--v=0",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=BOUND_SECONDS,
        check=False,
    )


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to its console, or a load error (a failed request) Chromium logged."""
    return [
        line
        for line in stderr.splitlines()
        if ":CONSOLE" in line or "net::ERR" in line or "Uncaught" in line
    ]


class _Text(HTMLParser):
    """The text a person sees: everything but styles, scripts and the head."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head", "title"):
            self.hidden += 1
        elif tag in ("tr", "p", "h1", "h2", "div", "section", "pre", "br", "svg", "text"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head", "title"):
            self.hidden -= 1
        elif tag in ("td", "th", "text"):
            self.parts.append("  ")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def visible_text(dom: str) -> str:
    parser = _Text()
    parser.feed(dom)
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def pgingest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgingest", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_console_check_sees_an_error(tmp_path):
    """The check below would see a page's console error (it is not blind)."""
    page = tmp_path / "noisy.html"
    page.write_text("<html><body><script>console.error('noisy page')</script></body></html>")
    done = chromium(page, "--dump-dom")
    assert any("noisy page" in line for line in console_messages(done.stderr)), done.stderr


def test_report_page_in_a_browser(tmp_path, db):
    big = tmp_path / "big.csv"
    big.write_text("id,name\n" + "".join(f"{i},name {i}\n" for i in range(120_000)))
    wider = tmp_path / "wider.csv"
    wider.write_text("id,name,extra\n500000,x,1\n500001,y,2\n")
    rejected = tmp_path / "rejected.csv"
    rejected.write_text("id,name,extra\n7,a,1\n8,b,2,3\n9,c,3\n")
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"id,name\n1,\x00\x00\x00binary\n")
    proxy = CuttingProxy(db.dsn)
    try:
        proxy.cut_after(big.stat().st_size // 2)  # inside the big file's COPY
        done = pgingest(
            "load",
            "--dsn",
            via_proxy(db.dsn, proxy.port),
            "--schema",
            db.schema,
            "--table",
            "t",
            "--concurrency",
            "1",
            "--batch-size",
            "20000",
            "--retry-base",
            "0.05",
            "--on-error",
            "skip",
            "--json",
            str(big),
            str(wider),
            str(rejected),
            str(junk),
        )
    finally:
        proxy.close()
    assert proxy.cuts == 1
    document = json.loads(done.stdout)
    run_id = document["run"]["id"]
    assert document["run"]["failed"] == 1, done.stderr
    assert document["run"]["retries"] >= 1
    # The retries are in the manifest, with the run.
    recorded = db.fetch("SELECT path, error_class FROM pgingest.retries WHERE run_id = $1", run_id)
    assert len(recorded) == document["run"]["retries"]
    assert any(r["path"] == str(big) for r in recorded)

    page = tmp_path / "report.html"
    written = pgingest("report", str(run_id), "--dsn", db.dsn, "--html", str(page))
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == f"wrote the report of run {run_id} (failed) to {page}"
    html = page.read_text()
    assert not re.search(r"\b(src|href)\s*=", html)  # nothing to fetch: all inlined
    assert "http://" not in html
    assert "https://" not in html

    shot = tmp_path / "report.png"
    drawn = chromium(page, f"--screenshot={shot}", "--window-size=1400,2400")
    assert drawn.returncode == 0, drawn.stderr
    assert console_messages(drawn.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one

    dom = chromium(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr
    assert console_messages(dom.stderr) == []
    text = visible_text(dom.stdout)
    print(text)
    assert f"pgingest run {run_id} failed" in text
    for heading in (
        "Timeline of the run's files",
        "Slowest files",
        "Files",
        "Schema changes",
        "Rejected rows",
        "Retries",
    ):
        assert f"\n{heading}\n" in f"\n{text}\n", heading
    timeline = text.split("Timeline of the run's files", 1)[1].split("Slowest files", 1)[0]
    for name in ("big.csv", "wider.csv", "rejected.csv", "junk.csv"):
        assert name in timeline
    assert re.search(r"success, [\d.]+ s, 120,000 rows, [\d,]+ rows/s", timeline), timeline
    assert "failed, " in timeline
    slowest = text.split("Slowest files", 1)[1].split("\nFiles\n", 1)[0]
    assert slowest.splitlines()[2].startswith(str(big))  # the big file took longest
    changes = text.split("Schema changes", 1)[1].split("Rejected rows", 1)[0]
    assert "add_column" in changes
    assert "extra" in changes
    assert str(wider) in changes
    rejects = text.split("Rejected rows", 1)[1].split("Retries", 1)[0]
    assert str(rejected) in rejects
    assert "8,b,2,3" in rejects  # the line as it was in the file
    assert re.search(r"\b3\b", rejects)  # its line number
    retries = text.split("\nRetries\n", 1)[1]
    assert str(big) in retries
    assert "connection" in retries


def test_report_of_a_killed_run(tmp_path, db):
    """A run killed mid-file (SIGKILL after its third batch) is reported interrupted, its
    file too, with the rows it committed; no browser needed to read the page's text."""
    from integrity import run

    src = tmp_path / "killed.csv"
    src.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(20_000)))
    died = run(
        db.dsn,
        "load",
        str(src),
        "--table",
        "k",
        "--batch-size",
        "1000",
        "--json",
        schema=db.schema,
        crash="batch-committed:3",
    )
    assert died.returncode == -9, died.stderr
    assert died.stdout == ""  # killed: no document
    run_id = db.val("SELECT run_id FROM pgingest.files WHERE path = $1", str(src))
    page = tmp_path / "killed.html"
    written = pgingest("report", str(run_id), "--dsn", db.dsn, "--html", str(page))
    assert written.returncode == 0, written.stderr
    text = visible_text(page.read_text())
    assert f"pgingest run {run_id} interrupted" in text
    committed = db.count("k")
    assert committed > 0
    timeline = text.split("Timeline of the run's files", 1)[1].split("Slowest files", 1)[0]
    assert re.search(rf"killed\.csv\ninterrupted, [\d.]+ s, {committed:,} rows", timeline), timeline
    assert "(not finished)" in text


def test_a_file_tried_again_is_timed_in_this_run(tmp_path, db):
    """A failed file keeps its record (and its first start) when a later run tries it again:
    that run's report times it from its own start, not from the first attempt's."""
    bad = tmp_path / "again.csv"
    bad.write_text("id,name\n1,a\n2,b,c,d\n")
    args = ("load", "--dsn", db.dsn, "--schema", db.schema, str(bad))
    assert pgingest(*args).returncode == 1
    time.sleep(2.5)
    assert pgingest(*args).returncode == 1
    run_id = db.val("SELECT run_id FROM pgingest.files WHERE path = $1", str(bad))
    page = tmp_path / "again.html"
    assert pgingest("report", str(run_id), "--dsn", db.dsn, "--html", str(page)).returncode == 0
    text = visible_text(page.read_text())
    took = re.search(r"again\.csv\nfailed, ([\d.]+) s, 0 rows", text)
    assert took is not None, text
    assert float(took.group(1)) < 2.0
