"""Render an alsfrs HTML report in headless Chromium and check its layout.

Usage::

    python tools/report_layout.py report.html [--width 1280] [--screenshot shot.png]

Opens a copy of the report with a small measuring script appended (the report
itself has no script), at the given window width, and prints one line per table
wider than the page. Exit status 1 when any table is too wide, 2 when Chromium
(Debian package ``chromium``) is not installed. The tests call
:func:`measure` when Chromium is present.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = """
<script>
window.addEventListener('load', () => {
  const page = document.documentElement.clientWidth;
  const rows = [];
  document.querySelectorAll('table').forEach((t, i) => {
    const r = t.getBoundingClientRect();
    rows.push({index: i, left: r.left, right: r.right, width: r.width,
               caption: (t.previousElementSibling || {}).textContent || ''});
  });
  const imgs = [];
  document.querySelectorAll('img').forEach((im, i) => {
    imgs.push({index: i, width: im.getBoundingClientRect().width, natural: im.naturalWidth});
  });
  const pre = document.createElement('pre');
  pre.id = 'alsfrs-layout';
  pre.textContent = JSON.stringify({page: page, scroll: document.documentElement.scrollWidth,
                                    tables: rows, images: imgs});
  document.body.appendChild(pre);
});
</script>
"""


def chromium() -> str | None:
    """The Chromium executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str]) -> str:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False).stdout


def measure(report: str | Path, width: int = 1280) -> dict:
    """Page width, document scroll width, and every table's box, at ``width`` pixels."""
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (Debian package 'chromium')")
    text = Path(report).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "measure.html"
        page.write_text(text.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
        dom = _run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},900", "--virtual-time-budget=5000",
                    "--dump-dom", page.as_uri()])
    m = re.search(r'<pre id="alsfrs-layout">(.*?)</pre>', dom, re.S)
    if not m:
        raise RuntimeError("Chromium did not return the measurements")
    import html

    return json.loads(html.unescape(m.group(1)))


def too_wide(m: dict) -> list[dict]:
    """Tables whose right edge passes the page's width."""
    return [t for t in m["tables"] if t["right"] > m["page"] + 0.5]


def screenshot(report: str | Path, out: str | Path, width: int = 1280,
               height: int = 6000) -> Path:
    """A PNG of the report at ``width`` pixels."""
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (Debian package 'chromium')")
    out = Path(out).resolve()
    _run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
          f"--window-size={width},{height}", f"--screenshot={out}",
          Path(report).resolve().as_uri()])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--screenshot")
    a = ap.parse_args(argv)
    if chromium() is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    m = measure(a.report, a.width)
    bad = too_wide(m)
    print(f"page {m['page']} px, document {m['scroll']} px, {len(m['tables'])} tables, "
          f"{len(bad)} wider than the page")
    for t in bad:
        print(f"  table {t['index']}: right edge {t['right']:.0f} px ({t['caption'][:60]!r})")
    if a.screenshot:
        print(f"screenshot: {screenshot(a.report, a.screenshot, a.width)}")
    return 1 if bad or m["scroll"] > m["page"] else 0


if __name__ == "__main__":
    sys.exit(main())
