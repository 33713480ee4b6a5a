"""The repository documents itself: every link in its Markdown resolves inside it, and the README is its front page.

Relative links must name a file in the repository (and an `#anchor`, a heading of that file); none may leave the
repository's root. External http(s) links are allowed and never fetched. No Ray is started here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted([README, ROOT / "SECURITY.md", ROOT / "bench" / "README.md", *(ROOT / "docs").glob("*.md")])
README_MAX_BYTES = 8 * 1024
# The README's first two commands, exactly: set up and run the embedded default; set up and run the tests.
RUN_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/aomi-runtime serve"
TEST_COMMAND = 'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest'

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target "title") and ![alt](target), the text holding at most one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = ("http://", "https://")


@dataclass(frozen=True)
class Link:
    page: Path
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}: ({self.target})"


def prose_lines(page: Path) -> list[tuple[int, str]]:
    """The page's lines outside fenced code blocks, numbered."""
    lines: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def links(page: Path) -> list[Link]:
    """Every link of the page, also one whose text runs over a line break; none in code."""
    kept = dict(prose_lines(page))
    count = len(page.read_text(encoding="utf-8").splitlines())
    # Code blocks become empty lines and code spans empty spans, so that line numbers stay true.
    text = CODE_SPAN.sub("``", "\n".join(kept.get(n, "") for n in range(1, count + 1)))
    found = [Link(page, text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in INLINE_LINK.finditer(text)]
    for number, line in enumerate(text.splitlines(), start=1):
        if definition := REFERENCE_DEFINITION.match(line):
            found.append(Link(page, number, definition.group(1)))
    return found


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: link text kept, lower case, punctuation dropped, spaces to '-'."""
    text = INLINE_LINK.sub(lambda m: m.group(0)[m.group(0).index("[") + 1 : m.group(0).rindex("](")], heading)
    return re.sub(r"[^\w\- ]", "", text.replace("`", "").lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(page):
        if heading := HEADING.match(line):
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")  # GitHub numbers repeated headings
    return found


def problem(link: Link) -> str | None:
    """What is wrong with a link, or None."""
    target = link.target
    if not target:
        return "an empty link"
    if target.startswith(EXTERNAL):
        return None  # allowed, never fetched
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target):
        return "a link of a scheme other than http(s)"
    if "../shared" in target:
        return "points to ../shared, which users of the repository do not have"
    path_part, _, anchor = target.partition("#")
    if path_part.startswith("/"):
        return "an absolute path: link relative to the page"
    path = (link.page.parent / unquote(path_part)).resolve() if path_part else link.page
    if not path.is_relative_to(ROOT):
        return "points outside the repository"
    if not path.exists():
        return "names no file in the repository"
    if anchor and path.suffix == ".md" and unquote(anchor) not in anchors(path):
        return f"#{anchor} is no heading of {path.relative_to(ROOT)}"
    return None


ALL_LINKS = [link for page in PAGES for link in links(page)]


def test_the_pages_walked_exist_and_hold_links() -> None:
    assert all(page.is_file() for page in PAGES)
    assert len(ALL_LINKS) > 20, "the link walker found hardly any links: is its pattern broken?"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_inside_the_repository(page: Path) -> None:
    broken = [f"{link}: {why}" for link in links(page) if (why := problem(link)) is not None]
    assert broken == [], "\n".join(broken)


def test_the_readme_links_every_page_of_the_docs() -> None:
    linked = {(README.parent / link.target.partition("#")[0]).resolve() for link in links(README)}
    unlinked = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert unlinked == []


def test_the_readme_is_a_front_page_under_8_kb() -> None:
    size = len(README.read_bytes())
    assert size < README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"


def test_the_readme_starts_with_the_run_and_test_commands() -> None:
    text = README.read_text(encoding="utf-8")
    opening = text.split("\n## ", 1)[0]  # what comes before the first section
    commands = [line.strip() for line in opening.splitlines() if line.startswith("    ") and line.strip()]
    assert commands == [RUN_COMMAND, TEST_COMMAND]
    assert text.index(RUN_COMMAND) < text.index(TEST_COMMAND) < text.index("\n---\n")


def test_the_checker_catches_what_it_is_for() -> None:
    """A link walker that finds nothing wrong anywhere proves nothing: it must refuse each kind of bad link."""
    page = ROOT / "docs" / "api.md"
    cases = {
        "../../shared/API.md": "../shared",
        "nowhere.md": "no file",
        "../../outside.md": "outside",
        "/README.md": "absolute",
        "design.md#no-such-heading": "no heading",
        "#no-such-heading": "no heading",
        "ftp://example.com/x": "scheme",
    }
    for target, expected in cases.items():
        why = problem(Link(page, 1, target))
        assert why is not None and expected in why, (target, why)
    for fine in ("design.md", "design.md#floors", "#errors", "../SECURITY.md", "https://docs.ray.io"):
        assert problem(Link(page, 1, fine)) is None, fine
    assert [link.target for link in links(page) if link.target == "#errors"], "api.md's own table of contents"


def test_the_walker_finds_links_over_line_breaks_and_none_in_code(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("See [the\nHTTP contract](docs/api.md) and `[not](a.md)`.\n\n```\n[nor](b.md)\n```\n[c]: c.md\n")
    assert [(link.line, link.target) for link in links(page)] == [(2, "docs/api.md"), (7, "c.md")]
