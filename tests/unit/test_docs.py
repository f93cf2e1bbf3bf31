"""The documentation holds together: README.md and docs/ link only to files and headings that exist, the code
cites only docs sections that exist, and the README stays a short front page. No Spark.

Anchors are GitHub's: a heading's text, lowercased, without punctuation but `-` and `_`, spaces as `-`,
and a repeated heading suffixed -1, -2, ...
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_LIMIT = 10_000  # bytes

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# A docs path in code: `docs/design.md` or `docs/design.md#layers`.
CITATION = re.compile(r"\bdocs/[\w./-]+?\.md(?:#[\w-]+)?")
SHELLS = ("sh", "bash", "shell", "console")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks (code blocks may hold anything)."""
    lines, fence = [], None
    for line in path.read_text().splitlines():
        opened = FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)
        elif fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
        else:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's markdown text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = CODE_SPAN.sub(lambda m: m.group(2), text)
    text = re.sub(r"[*_]{1,3}(?=\S)(.+?)(?<=\S)[*_]{1,3}", r"\1", text)  # emphasis
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def links(path: Path) -> list[str]:
    targets = []
    for line in prose_lines(path):
        targets += LINK.findall(CODE_SPAN.sub("", line))
    return targets


def broken(target: str, source: Path) -> str | None:
    """What is wrong with a link `target` found in `source`, or None."""
    file, _, anchor = target.partition("#")
    destination = (source.parent / file).resolve() if file else source
    if not destination.exists():
        return f"{target}: no file {destination.relative_to(ROOT) if destination.is_relative_to(ROOT) else destination}"
    if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
        return f"{target}: no heading with anchor #{anchor} in {destination.relative_to(ROOT)}"
    return None


def test_the_anchors_are_githubs():
    assert slug("Spark settings: embedded and under spark-submit") == "spark-settings-embedded-and-under-spark-submit"
    assert slug("The API and the job table's disk use") == "the-api-and-the-job-tables-disk-use"
    assert slug("`scripts/bench export`, **fast**") == "scriptsbench-export-fast"
    assert slug("Why not [GraphX](https://spark.apache.org/graphx/)") == "why-not-graphx"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_exists(path):
    relative = [t for t in links(path) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]  # http(s):, mailto: ...
    problems = [p for t in relative if (p := broken(t, path))]
    assert problems == [], f"{path.relative_to(ROOT)}: " + "; ".join(problems)


def cited_files() -> list[Path]:
    """The files whose comments may cite the docs: code and config under jobs/, scripts/, tests/, conf/, and
    the shell scripts in scripts/."""
    files = [p for folder in ("jobs", "scripts", "tests", "conf") for p in (ROOT / folder).rglob("*")
             if p.is_file() and p.suffix in (".py", ".properties", ".toml") and "__pycache__" not in p.parts]
    files += [p for p in (ROOT / "scripts").iterdir() if p.is_file() and not p.suffix]
    return sorted(files)


def citations() -> list[tuple[Path, str]]:
    return [(path, cited) for path in cited_files() for cited in CITATION.findall(path.read_text())]


def test_the_code_cites_the_docs():
    assert len(citations()) >= 10, "found hardly any docs/….md citations: is CITATION still right?"


def test_the_code_cites_no_readme_sections():
    """The README is a front page: what the code explains in prose lives in docs/, with an anchor."""
    stale = [str(path.relative_to(ROOT)) for path in [*cited_files(), ROOT / "pyproject.toml"]
             if re.search(r"README, \"", path.read_text())]
    assert stale == []


@pytest.mark.parametrize(("path", "cited"), citations(), ids=lambda v: str(v.relative_to(ROOT)) if
                         isinstance(v, Path) else v)
def test_every_docs_section_the_code_cites_exists(path, cited):
    problem = broken(cited, ROOT / "README.md")  # docs/… is relative to the repository's root
    assert problem is None, f"{path.relative_to(ROOT)} cites {problem}"


def test_the_readme_is_short():
    size = len(README.read_bytes())
    assert size < README_LIMIT, f"README.md is {size} bytes: move detail into docs/ (at most {README_LIMIT})"


def test_the_readme_starts_with_the_two_setup_commands():
    blocks, block, fence = [], None, None
    for line in README.read_text().splitlines():
        opened = FENCE.match(line)
        if fence is None and opened:
            fence, block = opened.group(1), [] if opened.group(2) in SHELLS else None
        elif fence is not None and line.strip() == fence:
            if block is not None:
                blocks.append(block)
            fence = block = None
        elif block is not None:
            block.append(line)
    assert blocks, "README.md has no shell code block"
    commands = [c for c in (line.split("#", 1)[0].strip() for line in blocks[0]) if c]
    assert commands == ["./scripts/demo", "./scripts/test"]


SEEDS_PAGE = DOCS / "reference" / "seeds.md"
NAMED_TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def test_every_difference_from_the_seeds_names_a_test_that_exists():
    """Each entry of the seeds page names the test that holds it; a renamed or deleted test fails here."""
    entries = [line for line in prose_lines(SEEDS_PAGE) if line.startswith("- **")]
    named = NAMED_TEST.findall(SEEDS_PAGE.read_text())
    assert len(named) >= len(entries) >= 5
    missing = [f"{file}::{test}" for file, test in named
               if not (ROOT / file).exists() or not re.search(rf"^def {test}\(", (ROOT / file).read_text(), re.M)]
    assert missing == []
