"""
The package's top level: the public API in one import, without loading
Twisted (the wire core must stay usable without it).
"""

import importlib
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import msgr2tx


class TopLevelTests(SynchronousTestCase):
    def test_names_are_the_defining_modules_objects(self):
        for name, module in msgr2tx._EXPORTS.items():
            self.assertIs(getattr(msgr2tx, name), getattr(importlib.import_module(module), name), name)
        self.assertEqual(sorted(msgr2tx.__all__), sorted(["__version__", *msgr2tx._EXPORTS]))

    def test_every_object_error_is_exported(self):
        # docs/objects.md lists these together: each one is importable from the top level
        import msgr2tx.errors as errors
        rados_errors = {name for name, value in vars(errors).items()
                        if isinstance(value, type) and issubclass(value, errors.RadosError)}
        self.assertLessEqual({"RadosError", "ObjectNotFound", "ObjectExists", "NoData",
                                        "PermissionDenied", "PoolNotFound", "OpTimeout"}, rados_errors)
        for name in rados_errors:
            self.assertIs(getattr(msgr2tx, name), getattr(errors, name), name)
            self.assertIn(name, msgr2tx.__all__)

    def test_unknown_name(self):
        with self.assertRaises(AttributeError):
            msgr2tx.NoSuchThing  # noqa: B018

    def test_import_loads_no_twisted(self):
        code = ("import sys, msgr2tx, msgr2tx.core.connection; "
                "print(sorted(m for m in sys.modules if m.split('.')[0] == 'twisted'))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout.strip(), "[]")

    def test_public_names_are_documented(self):
        # every public name is on the API page, through the automodule of its module
        import os
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(here, "docs", "api.md")) as f:
            api = f.read()
        for name, module in msgr2tx._EXPORTS.items():
            self.assertIn(".. automodule:: %s" % module, api, name)
