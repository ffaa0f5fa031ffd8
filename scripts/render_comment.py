"""A pull request comment's markdown as a picture, roughly as GitHub shows it (for the README).

    uv run python scripts/bench_pr_feedback.py --comment-out comment.md
    uv run python scripts/render_comment.py comment.md docs/images/pr-comment-sample-run.png

markdown-it-py (with tables, as GitHub's flavour has them) turns it into HTML; Debian's chromium, headless,
takes the screenshot (`bash scripts/ensure-browser.sh` installs it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from markdown_it import MarkdownIt

STYLE = """
body { font: 14px -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1f2328; margin: 0; }
.comment { border: 1px solid #d1d9e0; border-radius: 6px; margin: 16px; }
.header { background: #f6f8fa; border-bottom: 1px solid #d1d9e0; padding: 8px 16px; color: #59636e; }
.header b { color: #1f2328; }
.body { padding: 4px 16px 8px; }
h3 { font-size: 16px; margin: 16px 0 8px; } h4 { font-size: 14px; margin: 16px 0 8px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #d1d9e0; padding: 4px 10px; text-align: left; }
tr:nth-child(2n) { background: #f6f8fa; }
code { background: #eff1f3; border-radius: 4px; padding: 1px 4px; font-size: 12px; }
a { color: #0969da; text-decoration: none; }
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("markdown", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1100)
    args = parser.parse_args()
    text = args.markdown.read_text()
    body = MarkdownIt("commonmark").enable("table").render(text)
    page = (
        f"<html><head><meta charset='utf-8'><style>{STYLE}</style></head><body><div class='comment'>"
        f"<div class='header'><b>github-actions</b> bot commented</div><div class='body'>{body}</div></div>"
        "</body></html>"
    )
    # every line of the comment is a row of text or of a table: about 24 px each, and the margins
    height = 100 + 24 * len(text.splitlines())
    with tempfile.TemporaryDirectory() as folder:
        html = Path(folder) / "comment.html"
        html.write_text(page)
        command = [
            "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--disable-background-networking", "--disable-component-update", "--no-first-run",
            f"--user-data-dir={folder}/profile", f"--window-size={args.width},{height}",
            f"--screenshot={args.png.resolve()}", html.as_uri(),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0 or not args.png.exists():
        print(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}", file=sys.stderr)
        return 1
    print(f"wrote {args.png} ({args.width}x{height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
