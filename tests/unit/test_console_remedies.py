"""The console's "what to do" for each error code is the error codes page's (docs/reference/errors.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "jobs" / "shells" / "http" / "console" / "console.js"
ERRORS_PAGE = ROOT / "docs" / "reference" / "errors.md"


def documented() -> dict[str, str]:
    """Each code's "what to do" cell, as text: links as their words, no backticks."""
    remedies = {}
    for line in ERRORS_PAGE.read_text().splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            remedies[cells[0].strip("`")] = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", cells[-1]).replace("`", "")
    return remedies


def in_the_console() -> dict[str, str]:
    block = re.search(r"const REMEDIES = \{\n(.*?)\n\};", SCRIPT.read_text(), re.DOTALL)
    assert block, "console.js has no REMEDIES"
    return {code: json.loads(text) for code, text in re.findall(r'^\s+([A-Z_]+): (".*"),$', block[1], re.MULTILINE)}


def test_the_console_says_what_to_do_as_the_docs_do():
    assert in_the_console() == documented()
