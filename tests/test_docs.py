"""
The documentation follows the code: the state diagram in docs/protocol.md is
what tools/gen_state_diagram.py generates now, and docs/quickstart.md
mentions every twistd option and every CLI subcommand, and its option
tables name every option of tap.Options and of the CLI's shared argparse
options with the parsers' own defaults.
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


def _table_after(doc, anchor):
    """The rows (lists of cells) of the first Markdown table after the text anchor."""
    start = doc.index(anchor)
    rows = []
    for line in doc[start:].splitlines()[1:]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]                                   # without the header


def _literal(cell):
    """A default as the table writes it: the text before any parenthesis, without backticks."""
    return cell.split(" (")[0].replace("`", "").strip()


def _same(documented, default):
    if isinstance(default, bool):
        return documented == ("on" if default else "off")
    if isinstance(default, (int, float)):
        try:
            return float(documented) == float(default)
        except ValueError:
            return False
    return documented == str(default)


def _subparser(name):
    parser = cli.build_parser()
    for action in parser._actions:
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict) and name in choices:
            return choices[name]
    raise AssertionError("no subcommand %s" % name)


class OptionTableTests(SynchronousTestCase):
    """The option tables of docs/quickstart.md name every option of the parsers, with their defaults."""

    def setUp(self):
        self.doc = _read("docs", "quickstart.md")

    def test_twistd_table(self):
        rows = _table_after(self.doc, "## twistd msgr2 options")
        table = {re.match(r"`--([a-z][a-z-]*)", r[0]).group(1): r[1] for r in rows}
        defaults = {p[0]: p[2] for p in tap.Options.optParameters}
        defaults.update((f[0], False) for f in tap.Options.optFlags)
        defaults.update((n[len("opt_"):].replace("_", "-"), None) for n in vars(tap.Options) if n.startswith("opt_"))
        defaults["listen"] = tap.DEFAULT_LISTEN
        defaults["help"] = None
        self.assertEqual(sorted(table), sorted(defaults), "twistd msgr2 options and the table differ")
        wrong = ["--%s: table %r, parser %r" % (name, table[name], default) for name, default in defaults.items()
                 if default is not None and not _same(_literal(table[name]), default)]
        self.assertEqual(wrong, [], "defaults in the twistd msgr2 table differ from msgr2tx/tap.py")

    def test_cli_shared_table(self):
        rows = _table_after(self.doc, "Options shared by `ping`, `command`, `echo-test` and `rados`")
        shared = None
        for name in ("ping", "command", "echo-test", "rados"):
            actions = {a.dest: a for a in _subparser(name)._actions if a.option_strings and a.dest != "help"}
            shared = actions if shared is None else {d: a for d, a in shared.items() if d in actions}
        documented, wrong = set(), []
        for cells in rows:
            options = re.findall(r"`(--?[a-z][a-z-]*)", cells[0])
            actions = []
            for option in options:
                matches = [a for a in shared.values() if option in a.option_strings]
                self.assertEqual(len(matches), 1, "%s in the table is not a shared option" % option)
                actions.append(matches[0])
                documented.add(option)
            # one row per option, or one row for several options with their defaults listed in order
            distinct = list(dict.fromkeys(actions))
            cell_defaults = [cells[1]] if len(distinct) == 1 else cells[1].split(", ")
            self.assertEqual(len(cell_defaults), len(distinct), cells)
            for action, cell in zip(distinct, cell_defaults):
                if action.default is not None and not _same(_literal(cell), action.default):
                    wrong.append("%s: table %r, parser %r" % (action.option_strings[-1], cell, action.default))
        self.assertEqual(wrong, [], "defaults in the shared options table differ from msgr2tx/cli.py")
        missing = sorted(o for a in shared.values() for o in a.option_strings if o not in documented)
        self.assertEqual(missing, [], "shared options missing from the table")

    def test_connect_timeout_default(self):
        (row,) = [r for r in _table_after(self.doc, "Options shared by") if "--connect-timeout" in r[0]]
        self.assertTrue(_same(_literal(row[1]), cli.DEFAULT_CONNECT_TIMEOUT), row)

    def test_subcommand_defaults_in_prose(self):
        """ping's and echo-test's own options with a default name it next to the option."""
        wrong = []
        for name in ("ping", "echo-test"):
            shared = {a.dest for a in _subparser("command")._actions}
            for action in _subparser(name)._actions:
                if not action.option_strings or action.dest in shared or action.default in (None, False):
                    continue
                option = action.option_strings[-1]
                pattern = (r"`%s[^`]*`[^.;|]{0,40}?\(default %s\b|`%s %s` \(default\)"
                           % (re.escape(option), re.escape(str(action.default)), re.escape(option),
                              re.escape(str(action.default))))
                if not re.search(pattern, self.doc):
                    wrong.append("%s %s (default %s)" % (name, option, action.default))
        self.assertEqual(wrong, [], "defaults not stated (or stated wrongly) in docs/quickstart.md")
