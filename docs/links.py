"""Line links from the docs into the code, kept true.

A link such as [`relabel_her`](../algos/her.py#L120) must point at the line that
defines `relabel_her` (`def`, `class` or an assignment) in that file.

    python docs/links.py          # list the links that point at the wrong line
    python docs/links.py --fix    # rewrite their line numbers
"""

from __future__ import annotations

import os
import re
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
LINK = re.compile(r"\[`(?P<name>[A-Za-z_][\w.]*)`\]\((?P<path>\.\./[^)#\s]+)#L(?P<line>\d+)\)")


def definition_line(path: str, name: str) -> int | None:
    """1-based line where `name` (last dotted part) is defined in `path`, else None."""
    symbol = re.escape(name.split(".")[-1])
    with open(path) as f:
        lines = f.readlines()
    for pattern in (  # a function or class first, then an assignment or field
        rf"^\s*(?:def {symbol}\(|class {symbol}\b)",
        rf"^\s*{symbol}\s*[:=]",
    ):
        for number, line in enumerate(lines, 1):
            if re.match(pattern, line):
                return number
    return None


def check(doc: str) -> list[tuple[str, int, int | None]]:
    """(name, linked line, defining line) of every wrong link in `doc`."""
    wrong = []
    with open(doc) as f:
        text = f.read()
    for match in LINK.finditer(text):
        target = os.path.normpath(os.path.join(os.path.dirname(doc), match["path"]))
        found = definition_line(target, match["name"]) if os.path.exists(target) else None
        if found != int(match["line"]):
            wrong.append((f"{match['name']} in {match['path']}", int(match["line"]), found))
    return wrong


def fix(doc: str) -> int:
    """Rewrite the line numbers of `doc`'s links to their definitions; returns how many."""
    with open(doc) as f:
        text = f.read()
    changed = 0

    def repair(match: re.Match) -> str:
        nonlocal changed
        target = os.path.normpath(os.path.join(os.path.dirname(doc), match["path"]))
        found = definition_line(target, match["name"]) if os.path.exists(target) else None
        if found is None or found == int(match["line"]):
            return match[0]
        changed += 1
        return f"[`{match['name']}`]({match['path']}#L{found})"

    text = LINK.sub(repair, text)
    with open(doc, "w") as f:
        f.write(text)
    return changed


def documents() -> list[str]:
    readme = os.path.join(os.path.dirname(DOCS), "README.md")
    return sorted(os.path.join(DOCS, n) for n in os.listdir(DOCS) if n.endswith(".md")) + [readme]


if __name__ == "__main__":
    bad = 0
    for doc in documents():
        if "--fix" in sys.argv[1:]:
            print(f"{doc}: {fix(doc)} link(s) updated")
        for name, linked, found in check(doc):
            bad += 1
            print(f"{doc}: {name} links line {linked}, defined at {found}")
    sys.exit(1 if bad else 0)
