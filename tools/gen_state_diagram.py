#!/usr/bin/env python3
"""
Print the msgr2 connection state diagram as a Mermaid ``stateDiagram-v2``
block, generated from ``msgr2tx.core.connection``:

* one edge per (state, next state) pair, labelled with the frame tags whose
  rule in ``TRANSITIONS`` leads there (a rule with no targets leads to
  CLOSED);
* the banner exchange, which is not a frame, from ``BANNER_TRANSITIONS``.

    python tools/gen_state_diagram.py           # print the block
    python tools/gen_state_diagram.py --write   # rewrite it in docs/protocol.md
    python tools/gen_state_diagram.py --check   # exit 1 if docs/protocol.md is stale
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from msgr2tx.core.connection import BANNER_TRANSITIONS, TRANSITIONS, State  # noqa: E402

BEGIN = "<!-- state-diagram:begin -->"
END = "<!-- state-diagram:end -->"
DOC = os.path.join(ROOT, "docs", "protocol.md")

#: how each role enters the machine
_ENTRIES = ((State.BANNER_CONNECTING, "client"), (State.BANNER_ACCEPTING, "server"))


def diagram():
    """The Mermaid source, without the code fence."""
    lines = ["stateDiagram-v2"]
    for state, role in _ENTRIES:
        lines.append("    [*] --> %s : %s" % (state.value, role))
    for state, target in BANNER_TRANSITIONS.items():
        lines.append("    %s --> %s : banner" % (state.value, target.value))
    for state, rules in TRANSITIONS.items():
        edges = {}
        for tag, rule in rules.items():
            for target in rule.targets or (State.CLOSED,):
                edges.setdefault(target, []).append(tag.name)
        for target, tags in edges.items():
            lines.append("    %s --> %s : %s" % (state.value, target.value, ", ".join(tags)))
    return "\n".join(lines) + "\n"


def section():
    """What goes between the markers in docs/protocol.md."""
    return "```mermaid\n" + diagram() + "```\n"


def extract(text):
    """The text between the markers (exclusive), or None if they are missing."""
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < start:
        return None
    return text[start + len(BEGIN):end].lstrip("\n")


def replace(text):
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < start:
        raise ValueError("markers %s ... %s not found" % (BEGIN, END))
    return text[:start + len(BEGIN)] + "\n" + section() + text[end:]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite the section in docs/protocol.md")
    group.add_argument("--check", action="store_true", help="fail if docs/protocol.md is out of date")
    parser.add_argument("--doc", default=DOC, help="the Markdown file (default docs/protocol.md)")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        sys.stdout.write(section())
        return 0
    with open(args.doc, encoding="utf-8") as f:
        text = f.read()
    if args.check:
        if extract(text) != section():
            print("%s: state diagram is stale; run %s --write" % (args.doc, sys.argv[0]), file=sys.stderr)
            return 1
        return 0
    new = replace(text)
    if new != text:
        with open(args.doc, "w", encoding="utf-8") as f:
            f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
