"""The documentation: a short README whose two commands are the ones CI runs, generated pages that match their
sources, and a site that `mkdocs build --strict` builds (a broken link or a missing page fails)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_is_short_and_says_no_issue_numbers() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert not re.search(r"\bissues?\b", text, re.IGNORECASE)
    assert "make demo" in text and "make test" in text


def test_ci_runs_the_readme_test_command() -> None:
    assert (REPO / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"


def test_readme_links_exist() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(((?!https?://)[^)#\s]+)", text):
        assert (REPO / target).exists(), target


def test_generated_pages_are_current() -> None:
    out = subprocess.run([sys.executable, "-m", "extractor.tools.docs", "--check"], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr


def test_user_docs_say_no_issue_numbers() -> None:
    for page in (REPO / "docs").glob("*.md"):
        if page.name in {"changelog.md"}:
            continue
        assert not re.search(r"\bissues? ?#?\d", page.read_text(encoding="utf-8")), page.name


def test_site_builds_strictly(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=REPO, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                                        **__import__("os").environ})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp_path / "site" / "settings" / "index.html").is_file()
