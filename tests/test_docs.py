"""
The documentation follows the code: the state diagram in docs/protocol.md is
what tools/gen_state_diagram.py generates now, and docs/quickstart.md
mentions every twistd option and every CLI subcommand.
"""

import importlib.util
import os
import re

from twisted.trial.unittest import SynchronousTestCase

from msgr2tx import cli, tap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def _load_generator():
    path = os.path.join(ROOT, "tools", "gen_state_diagram.py")
    spec = importlib.util.spec_from_file_location("gen_state_diagram", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _subcommands():
    parser = cli.build_parser()
    for action in parser._actions:
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict) and choices:
            return sorted(choices)
    raise AssertionError("the msgr2tx parser has no subcommands")


class StateDiagramTests(SynchronousTestCase):
    def setUp(self):
        self.gen = _load_generator()
        self.doc = _read("docs", "protocol.md")

    def test_markers_present(self):
        self.assertIn(self.gen.BEGIN, self.doc)
        self.assertIn(self.gen.END, self.doc)

    def test_diagram_is_current(self):
        self.assertEqual(
            self.gen.extract(self.doc), self.gen.section(),
            "docs/protocol.md is stale: run python tools/gen_state_diagram.py --write")

    def test_diagram_covers_tables(self):
        from msgr2tx.core.connection import NEXT_STATES, TRANSITIONS
        text = self.gen.diagram()
        for state, targets in NEXT_STATES.items():
            for target in targets:
                self.assertIn("%s --> %s :" % (state.value, target.value), text)
        for state, tags in TRANSITIONS.items():
            for tag in tags:
                self.assertIn(tag.name, text)

    def test_replace_is_idempotent(self):
        self.assertEqual(self.gen.replace(self.doc), self.doc)


class QuickstartTests(SynchronousTestCase):
    def setUp(self):
        self.doc = _read("docs", "quickstart.md")

    def test_twistd_options(self):
        names = [p[0] for p in tap.Options.optParameters]
        names += [n[len("opt_"):].replace("_", "-") for n in vars(tap.Options) if n.startswith("opt_")]
        missing = [n for n in names if not re.search(r"--%s\b" % re.escape(n), self.doc)]
        self.assertEqual(missing, [], "options missing from docs/quickstart.md")

    def test_cli_subcommands(self):
        missing = [c for c in _subcommands() if "msgr2tx %s" % c not in self.doc]
        self.assertEqual(missing, [], "subcommands missing from docs/quickstart.md")

    def test_cli_exit_codes(self):
        for code in (cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_USAGE, cli.EXIT_INTERRUPTED):
            self.assertIn("| %d |" % code, self.doc)
