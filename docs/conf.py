"""Sphinx configuration for the msgr2tx documentation (make docs)."""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from msgr2tx._version import __version__  # noqa: E402

project = "msgr2tx"
author = "msgr2tx contributors"
copyright = "msgr2tx contributors"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

# GitHub-style anchors, so links such as protocol.md#errors resolve
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

html_theme = "alabaster"
html_static_path = []

autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "show-inheritance": True}


# Docstrings are written in epytext-ish markup (C{code}, L{link}, @param);
# turn the common forms into reStructuredText for autodoc.
_MARKUP = re.compile(r"[CLIBU]\{([^{}]*)\}")
_FIELD = re.compile(r"^(\s*)@(param|type|return|returns|rtype|raise|raises|ivar|var)\b\s*([^:]*):")


def _epytext_to_rst(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        line = _MARKUP.sub(lambda m: "``%s``" % m.group(1) if m.group(1) else "", line)
        m = _FIELD.match(line)
        if m:
            indent, field, arg = m.groups()
            field = {"returns": "return", "raises": "raises", "raise": "raises"}.get(field, field)
            line = "%s:%s%s:%s" % (indent, field, " " + arg.strip() if arg.strip() else "", line[m.end():])
        lines[i] = line


def _mermaid_as_text(app):
    # The state diagram is a mermaid block: show it as text, fetch nothing.
    from pygments.lexers.special import TextLexer
    app.add_lexer("mermaid", TextLexer)


def setup(app):
    app.connect("autodoc-process-docstring", _epytext_to_rst)
    _mermaid_as_text(app)
