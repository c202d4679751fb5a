"""Ceph keyring files: parsing, writing, errors that name the line and never the key."""

import base64
import os
import shutil
import stat
import subprocess
import tempfile
import time

from twisted.trial.unittest import SkipTest, TestCase

from msgr2tx.auth.cephx_proto import CRYPTO_AES, CryptoKey
from msgr2tx.auth.keyring import Keyring, KeyringError
from msgr2tx.core.encoding import EntityName, EntityType, utime_t
from msgr2tx.errors import Msgr2Error

# produced by `ceph-authtool --gen-print-key` (Ceph 16.2.15)
REAL_KEY = "AQDrugVrjxRMGBAAUs+ibes+G9E0cdTSutY+dw=="
REAL_SECRET_HEX = "52cfa26deb3e1bd13471d4d2bad63e77"

SAMPLE = """\
# a comment
[global]
    whatever = ignored
[mon.]
\tkey = %(k1)s
\tcaps mon = "allow *"
[client.admin]   ; trailing comment
\tkey = %(k2)s
\tcaps_mon = "allow *"
\tcaps osd = "allow rwx pool=\\"x;y\\""
\tauid = 0
""" % {"k1": REAL_KEY, "k2": REAL_KEY}


def _secret_forms(key: CryptoKey):
    s = key.secret_bytes
    return [s.hex(), base64.b64encode(s).decode(), repr(s)[2:-1], key.to_base64()]


class CryptoKeyTests(TestCase):
    def test_decode_real_key(self):
        key = CryptoKey.from_base64(REAL_KEY)
        self.assertEqual(key.type, CRYPTO_AES)
        self.assertEqual(key.created, utime_t(1795537643, 407639183))
        self.assertEqual(key.secret_bytes.hex(), REAL_SECRET_HEX)
        self.assertEqual(key.to_base64(), REAL_KEY)

    def test_repr_hides_secret(self):
        key = CryptoKey.from_base64(REAL_KEY)
        for text in (repr(key), str(key), "%s" % (key,), "%r" % ([key],)):
            for form in _secret_forms(key):
                self.assertNotIn(form, text)
        self.assertIn("16 secret bytes", repr(key))

    def test_generated_key_is_accepted_by_ceph_authtool(self):
        if shutil.which("ceph-authtool") is None:
            raise SkipTest("ceph-authtool is not installed")
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "k")
        ring = Keyring()
        key = CryptoKey.generate()
        ring.add("client.foo", key, {"mon": 'allow "r"'})
        ring.save(path)
        p = subprocess.run(["ceph-authtool", path, "-p", "-n", "client.foo"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode().strip(), key.to_base64())
        p = subprocess.run(["ceph-authtool", "-l", path], capture_output=True, timeout=30)
        self.assertIn(b'caps mon = "allow \\"r\\""', p.stdout)

    def test_ceph_authtool_gen_print_key(self):
        if shutil.which("ceph-authtool") is None:
            raise SkipTest("ceph-authtool is not installed")
        p = subprocess.run(["ceph-authtool", "--gen-print-key"], capture_output=True, timeout=30)
        key = CryptoKey.from_base64(p.stdout.decode())
        self.assertEqual(key.type, CRYPTO_AES)
        self.assertEqual(len(key.secret_bytes), 16)
        self.assertLess(abs(key.created.sec - time.time()), 300)

    def test_bad_keys(self):
        for text in ("not base64!", base64.b64encode(b"\x01\x00" + b"\x00" * 8 + b"\x10\x00short").decode(),
                     base64.b64encode(b"\x07\x00" + b"\x00" * 8 + b"\x10\x00" + b"k" * 16).decode(),
                     base64.b64encode(b"\x01\x00" + b"\x00" * 8 + b"\x04\x00abcd").decode()):
            self.assertRaises(Msgr2Error, CryptoKey.from_base64, text)

    def test_equality_is_by_value(self):
        self.assertEqual(CryptoKey.from_base64(REAL_KEY), CryptoKey.from_base64(REAL_KEY))
        self.assertNotEqual(CryptoKey.from_base64(REAL_KEY), CryptoKey.generate())


class KeyringParseTests(TestCase):
    def test_parse_sample(self):
        ring = Keyring.parse(SAMPLE, "sample")
        self.assertEqual([str(n) for n in ring.entities()], ["mon.", "client.admin"])
        self.assertEqual(ring.get("client.admin").secret_bytes.hex(), REAL_SECRET_HEX)
        self.assertEqual(ring.get(EntityName(EntityType.MON, "")), CryptoKey.from_base64(REAL_KEY))
        self.assertEqual(ring.caps("client.admin"), {"mon": "allow *", "osd": 'allow rwx pool="x;y"'})
        self.assertIn("client.admin", ring)
        self.assertNotIn("client.nobody", ring)

    def test_real_ceph_authtool_keyring(self):
        if shutil.which("ceph-authtool") is None:
            raise SkipTest("ceph-authtool is not installed")
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "keyring")
        subprocess.run(["ceph-authtool", "-C", path, "-n", "client.admin", "--gen-key",
                        "--cap", "mon", "allow *", "--cap", "osd", "allow rwx"], check=True, capture_output=True)
        subprocess.run(["ceph-authtool", path, "-n", "osd.0", "--gen-key"], check=True, capture_output=True)
        ring = Keyring.load(path)
        self.assertEqual(sorted(str(n) for n in ring.entities()), ["client.admin", "osd.0"])
        printed = subprocess.run(["ceph-authtool", path, "-p", "-n", "osd.0"], capture_output=True).stdout
        self.assertEqual(ring.get("osd.0").to_base64(), printed.decode().strip())
        self.assertEqual(ring.caps("client.admin"), {"mon": "allow *", "osd": "allow rwx"})

    def test_roundtrip_and_mode(self):
        ring = Keyring.parse(SAMPLE)
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "out")
        with open(path, "w") as f:
            f.write("old")
        os.chmod(path, 0o644)
        ring.save(path)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        again = Keyring.load(path)
        self.assertEqual(again.entities(), ring.entities())
        for n in ring.entities():
            self.assertEqual(again.get(n), ring.get(n))
            self.assertEqual(again.caps(n), ring.caps(n))
        self.assertEqual(again.path, path)

    def test_add_and_remove(self):
        ring = Keyring()
        key = CryptoKey.generate()
        ring.add("osd.3", key, {"osd": "allow *"})
        self.assertEqual(ring.get("osd.3"), key)
        ring.remove("osd.3")
        self.assertEqual(len(ring), 0)
        self.assertRaises(KeyringError, ring.get, "osd.3")
        self.assertRaises(TypeError, ring.add, "osd.3", b"raw")

    def test_reprs_hide_keys(self):
        ring = Keyring.parse(SAMPLE, "sample")
        texts = [repr(ring), str(ring), repr(ring.entry("client.admin")), repr(ring.entities())]
        for text in texts:
            for form in _secret_forms(ring.get("client.admin")):
                self.assertNotIn(form, text)
            self.assertNotIn(REAL_KEY, text)


class KeyringErrorTests(TestCase):
    def _error(self, text, filename="bad.keyring"):
        e = self.assertRaises(KeyringError, Keyring.parse, text, filename)
        self.assertIsInstance(e, Msgr2Error)
        msg = str(e) + repr(e) + repr(e.args)
        for secret_text in (REAL_KEY, REAL_KEY[:20], REAL_SECRET_HEX, "SEKRIT"):
            self.assertNotIn(secret_text, msg)
        return str(e)

    def test_bad_base64_key_names_file_and_line_not_key(self):
        msg = self._error("[client.admin]\n\tkey = %s\n" % ("SEKRIT" + REAL_KEY[6:-4] + "!!!!"))
        self.assertIn("bad.keyring:2", msg)
        self.assertIn("client.admin", msg)

    def test_truncated_key(self):
        msg = self._error("\n\n[client.admin]\nkey = %s\n" % base64.b64encode(
            base64.b64decode(REAL_KEY)[:-3]).decode())
        self.assertIn("bad.keyring:4", msg)

    def test_unknown_setting(self):
        self.assertIn(":2", self._error("[client.a]\nkez = SEKRIT\n"))

    def test_setting_outside_section(self):
        self.assertIn(":1", self._error("key = %s\n" % REAL_KEY))

    def test_bad_entity_name(self):
        self.assertIn(":1", self._error("[nonsense]\nkey = %s\n" % REAL_KEY))

    def test_missing_key(self):
        self.assertIn(":1", self._error("[client.a]\ncaps mon = \"allow r\"\n"))

    def test_not_key_value(self):
        self.assertIn(":2", self._error("[client.a]\nSEKRIT\n"))

    def test_unterminated_quote(self):
        self.assertIn(":3", self._error("[client.a]\nkey = %s\ncaps mon = \"allow\n" % REAL_KEY))

    def test_duplicate_section_and_key(self):
        self._error("[client.a]\nkey = %s\n[client.a]\nkey = %s\n" % (REAL_KEY, REAL_KEY))
        self._error("[client.a]\nkey = %s\nkey = %s\n" % (REAL_KEY, REAL_KEY))

    def test_missing_file_and_entity(self):
        e = self.assertRaises(KeyringError, Keyring.load, "/nonexistent/keyring")
        self.assertIn("/nonexistent/keyring", str(e))
        e = self.assertRaises(KeyringError, Keyring.parse(SAMPLE, "s").get, "client.bob")
        self.assertIn("client.bob", str(e))

    def test_binary_file(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "bin")
        with open(path, "wb") as f:
            f.write(b"[client.a]\n\xff\xfe\n")
        e = self.assertRaises(KeyringError, Keyring.load, path)
        self.assertIn(path + ":2", str(e))
