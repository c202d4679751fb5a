"""
Ceph keyring files: read, edit and write them.

A keyring is INI-like::

    [client.admin]
        key = AQD...==
        caps mon = "allow *"

C{key} is a base64 CryptoKey (u16 type, utime_t created, u16 length, secret).
Each entry keeps its own key type: C{aes} (type 1, 16 bytes) and C{aes256k}
(type 2, 32 bytes, Squid 19.2.6+ and Tentacle 20.2.4+) are usable; an entry
with a type msgr2tx does not know is read and written back unchanged, and
only asking for that entity's key fails (L{Keyring.get}), so one such entry
does not make the rest of the keyring unreadable.  Errors name the file and
the line, never the key material.  Files are written with mode 0600.
"""

import os
import re
from typing import Dict, List, Optional, Union

from msgr2tx.auth.cephx_proto import CryptoKey
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.errors import Msgr2Error

__all__ = ["Keyring", "KeyringEntry", "KeyringError", "CryptoKey"]


class KeyringError(Msgr2Error, ValueError):
    """A keyring is unreadable, malformed or lacks an entity.  No secrets inside."""


def _name(name: Union[str, EntityName]) -> EntityName:
    if isinstance(name, EntityName):
        return name
    try:
        return EntityName.parse(name)
    except ValueError as e:
        raise KeyringError(str(e)) from None


class KeyringEntry:
    __slots__ = ("name", "key", "caps")

    def __init__(self, name: EntityName, key: CryptoKey, caps: Optional[Dict[str, str]] = None) -> None:
        self.name = name
        self.key = key
        self.caps = dict(caps or {})

    def __repr__(self) -> str:
        return "<KeyringEntry %s %r caps=%r>" % (self.name, self.key, self.caps)


_SECTION = re.compile(r"^\[\s*([^\]]*?)\s*\]$")


def _strip_comment(line: str) -> str:
    """Cut a '#' or ';' comment that is not inside double quotes."""
    quoted = False
    escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch in "#;" and not quoted:
            return line[:i]
    return line


def _unquote(value: str, where: str) -> str:
    value = value.strip()
    if len(value) >= 1 and value[0] == '"':
        if len(value) < 2 or value[-1] != '"':
            raise KeyringError("%s: unterminated quoted value" % where)
        inner = value[1:-1]
        return re.sub(r'\\(.)', r"\1", inner)
    return value


class Keyring:
    """Entities with their keys and caps, in file order."""

    def __init__(self, path: Optional[str] = None) -> None:
        self.path = path
        self._entries: Dict[EntityName, KeyringEntry] = {}

    def __repr__(self) -> str:
        return "<Keyring %s entities=[%s]>" % (
            self.path or "(memory)", ", ".join(str(n) for n in self._entries))

    __str__ = __repr__

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name) -> bool:
        try:
            return _name(name) in self._entries
        except KeyringError:
            return False

    # -- reading ------------------------------------------------------------------

    @classmethod
    def load(cls, path: str) -> "Keyring":
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise KeyringError("cannot read keyring %s: %s" % (path, e.strerror or e)) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[:e.start].count(b"\n") + 1
            raise KeyringError("%s:%d: not UTF-8 text" % (path, line)) from None
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, filename: str = "<keyring>") -> "Keyring":
        ring = cls(filename if filename != "<keyring>" else None)
        current: Optional[EntityName] = None
        section_line = 0
        key: Optional[CryptoKey] = None
        caps: Dict[str, str] = {}
        skipping = False

        def close():
            if current is None:
                return
            if key is None:
                raise KeyringError("%s:%d: [%s] has no key" % (filename, section_line, current))
            ring._entries[current] = KeyringEntry(current, key, caps)

        for lineno, raw in enumerate(text.splitlines(), 1):
            where = "%s:%d" % (filename, lineno)
            line = _strip_comment(raw).strip()
            if not line:
                continue
            m = _SECTION.match(line)
            if m:
                close()
                section = m.group(1)
                current, key, caps, section_line = None, None, {}, lineno
                skipping = section == "global"
                if skipping:
                    continue
                try:
                    current = EntityName.parse(section)
                except ValueError:
                    raise KeyringError("%s: bad entity name [%s]" % (where, section)) from None
                if current in ring._entries:
                    raise KeyringError("%s: [%s] appears twice" % (where, section))
                continue
            if line.startswith("["):
                raise KeyringError("%s: malformed section header" % where)
            name, eq, value = line.partition("=")
            if not eq:
                raise KeyringError("%s: expected 'name = value'" % where)
            if skipping:
                continue
            if current is None:
                raise KeyringError("%s: setting outside any [entity] section" % where)
            name = " ".join(name.replace("_", " ").split())
            if name == "key":
                if key is not None:
                    raise KeyringError("%s: second key for [%s]" % (where, current))
                try:
                    key = CryptoKey.from_base64(_unquote(value, where), allow_unknown=True)
                except Msgr2Error:
                    # the message of the cause may describe the key: do not chain it
                    raise KeyringError("%s: key for [%s] is not a valid base64 cephx key"
                                       % (where, current)) from None
            elif name.startswith("caps "):
                service = name[5:].strip()
                if not service:
                    raise KeyringError("%s: caps without a service" % where)
                caps[service] = _unquote(value, where)
            elif name == "auid":
                pass  # obsolete, ignored like Ceph does
            else:
                raise KeyringError("%s: unknown setting %r in [%s]" % (where, name, current))
        close()
        return ring

    # -- queries and edits ----------------------------------------------------------

    def entities(self) -> List[EntityName]:
        return list(self._entries)

    def entry(self, name) -> KeyringEntry:
        n = _name(name)
        try:
            return self._entries[n]
        except KeyError:
            raise KeyringError("no key for %s in keyring %s" % (n, self.path or "(memory)")) from None

    def get(self, name) -> CryptoKey:
        """
        The usable key of C{name}.  L{KeyringError} if the keyring has no
        such entity, or its key is of a type msgr2tx cannot use (the error
        names the type, never the key).
        """
        entry = self.entry(name)
        if not entry.key.usable:
            raise KeyringError("the key for %s in keyring %s is of type %s, which msgr2tx cannot use "
                               "(it supports aes and aes256k)"
                               % (entry.name, self.path or "(memory)", entry.key.type_name))
        return entry.key

    def caps(self, name) -> Dict[str, str]:
        return dict(self.entry(name).caps)

    def add(self, name, key: CryptoKey, caps: Optional[Dict[str, str]] = None) -> KeyringEntry:
        n = _name(name)
        if not isinstance(key, CryptoKey):
            raise TypeError("key must be a CryptoKey")
        entry = self._entries[n] = KeyringEntry(n, key, caps)
        return entry

    def remove(self, name) -> None:
        self._entries.pop(_name(name), None)

    # -- writing ------------------------------------------------------------------------

    def to_text(self) -> str:
        out = []
        for entry in self._entries.values():
            out.append("[%s]\n" % _section_name(entry.name))
            out.append("\tkey = %s\n" % entry.key.to_base64())
            for service, cap in sorted(entry.caps.items()):
                out.append('\tcaps %s = "%s"\n' % (service, cap.replace("\\", "\\\\").replace('"', '\\"')))
        return "".join(out)

    def save(self, path: Optional[str] = None) -> None:
        """Write the keyring, mode 0600, replacing the file atomically."""
        path = path or self.path
        if not path:
            raise KeyringError("no path to save the keyring to")
        tmp = "%s.tmp.%d" % (path, os.getpid())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, self.to_text().encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise KeyringError("cannot write keyring %s: %s" % (path, e.strerror or e)) from None
        self.path = path


def _section_name(name: EntityName) -> str:
    return "%s.%s" % (EntityType.name(name.type), name.id)
