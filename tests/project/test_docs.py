"""The guide stays a guide: short, every link lands, nothing points outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 300
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return [ROOT / n for n in names
            if Path(n).suffix in {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".sh", ".cfg"}
            or Path(n).name in {"Makefile", "run"}]


def test_the_readme_is_at_most_300_lines():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move detail to docs/"


def test_the_run_and_test_commands_are_on_the_first_screen():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:60])
    assert "make run" in first_screen and "make test" in first_screen


def test_every_relative_link_in_the_guide_and_docs_lands_on_a_file():
    broken = []
    for page in markdown_files():
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # web links and anchors in the same page
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_nothing_in_the_repository_refers_to_a_file_outside_it():
    outside = ("DESIGN" + ".md", "../" + "shared")
    found = [f"{path.relative_to(ROOT)}: {word}" for path in tracked_text_files()
             if path.is_file() for word in outside if word in path.read_text(errors="ignore")]
    assert not found, "\n".join(found)
