"""
The package's layers, as README.md and docs/index.md describe them: imports
only point down, so the wire core can be read and tested alone and a change
to a client never reaches it.

    clients/, rados, cli, tap, ...      (top)
    protocol, factory, client, ...      the Twisted transport
    messages/                           Ceph message types, no I/O
    ceph/                               Ceph data types and placement, no I/O
    core/, auth/, errors                the wire core and the auth providers

The check reads every module's import statements (including imports inside
functions) with L{ast}, so it also sees imports that run only on some paths.
"""

import ast
import os

from twisted.trial.unittest import SynchronousTestCase

import msgr2tx

PACKAGE = os.path.dirname(os.path.abspath(msgr2tx.__file__))


def _modules():
    """(dotted module name, path) of every module in the package."""
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, name), os.path.dirname(PACKAGE))
                dotted = rel[:-3].replace(os.sep, ".")
                if dotted.endswith(".__init__"):
                    dotted = dotted[:-len(".__init__")]
                yield dotted, os.path.join(root, name)


def _imports(path, module):
    """The msgr2tx modules that the file at path imports, by dotted name."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(base + "." + alias.name for alias in node.names)
    return {name for name in found if name == "msgr2tx" or name.startswith("msgr2tx.")}


def _within(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


#: layer -> the msgr2tx modules it may import (besides itself)
ALLOWED = {
    "msgr2tx.core": ("msgr2tx.core", "msgr2tx.errors"),
    "msgr2tx.ceph": ("msgr2tx.ceph", "msgr2tx.core", "msgr2tx.errors"),
    "msgr2tx.messages": ("msgr2tx.messages", "msgr2tx.ceph", "msgr2tx.core", "msgr2tx.errors"),
    "msgr2tx.auth": ("msgr2tx.auth", "msgr2tx.core", "msgr2tx.errors", "msgr2tx.interfaces"),
}


class LayerTests(SynchronousTestCase):

    def test_modules_found(self):
        names = {name for name, _ in _modules()}
        for expected in ("msgr2tx.core.connection", "msgr2tx.messages.mon", "msgr2tx.ceph.osdmap",
                         "msgr2tx.clients.monclient", "msgr2tx.rados"):
            self.assertIn(expected, names)

    def test_lower_layers_import_only_below(self):
        """core, ceph and messages import nothing above them."""
        bad = []
        for name, path in _modules():
            for layer, allowed in ALLOWED.items():
                if _within(name, (layer,)):
                    for imported in _imports(path, name):
                        if imported != "msgr2tx" and not _within(imported, allowed):
                            bad.append("%s imports %s" % (name, imported))
        self.assertEqual(bad, [])

    def test_nothing_below_the_clients_imports_them(self):
        """Only the CLI, the twistd plugin, the object API and the clients themselves use msgr2tx.clients."""
        users = ("msgr2tx.clients", "msgr2tx.cli", "msgr2tx.tap", "msgr2tx.rados", "msgr2tx.testing")
        bad = []
        for name, path in _modules():
            if name == "msgr2tx" or _within(name, users):
                continue
            for imported in _imports(path, name):
                if _within(imported, ("msgr2tx.clients",)):
                    bad.append("%s imports %s" % (name, imported))
        self.assertEqual(bad, [])

    def test_the_check_sees_a_violation(self):
        """The import reader is not blind: core.connection's own imports are found."""
        path = os.path.join(PACKAGE, "core", "connection.py")
        imported = _imports(path, "msgr2tx.core.connection")
        self.assertIn("msgr2tx.core.messages", imported)
        self.assertFalse(_within("msgr2tx.clients.monclient", ALLOWED["msgr2tx.core"]))
