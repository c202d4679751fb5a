"""
Monitor commands typed as words (C{osd pool create p1 8}), turned into the
JSON command a monitor takes, using the monitor's own command table.

A monitor answers the command C{get_command_descriptions} with a JSON
object holding each of its commands under a key C{cmd000}, C{cmd001}, ...,
as C{sig} (its signature), C{help}, C{module}, C{perm} and C{flags}.
Each signature is a list of literal words (the prefix, e.g. C{"osd",
"pool", "create"}) followed by argument descriptors: dicts with C{name},
C{type} (C{CephInt}, C{CephChoices}, C{CephString}, ...), and optionally
C{req: "false"}, C{n: "N"} (one or more values), C{strings} (choices,
C{|} separated), C{range} (C{min} or C{min|max}) and C{goodchars} (a
character class).  This is what Ceph's own C{ceph} CLI reads
(C{src/pybind/ceph_argparse.py}); the matching rules here are ours:

  - the signatures whose literal words begin the typed words are candidates;
    the longest such prefix wins (C{osd pool ls} over C{osd});
  - the words after it fill the descriptors in order; a value that does
    not fit an optional descriptor leaves it out and is tried on the next;
    C{n: "N"} takes every following word that fits;
  - C{--NAME=VALUE} fills the descriptor C{NAME} (dashes are underscores),
    C{--NAME} alone sets a C{CephBool} to true;
  - values are sent typed: C{CephInt} as an integer, C{CephFloat} as a
    number, C{CephBool} as a boolean, C{CephOsdName} (C{osd.3} or C{3}) as
    the integer id, C{n: "N"} as a list; the rest as strings.

No Twisted and no I/O here.
"""

import ipaddress
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from msgr2tx.errors import CommandUsageError

#: C{flags} bits of a command description (Ceph's MonCommand FLAG_*)
FLAG_NOFORWARD = 1 << 0
FLAG_OBSOLETE = 1 << 1
FLAG_DEPRECATED = 1 << 2
FLAG_MGR = 1 << 3
FLAG_POLL = 1 << 4
FLAG_HIDDEN = 1 << 5


@dataclass(frozen=True)
class Signature:
    """One command: its literal C{prefix} words, argument descriptors, help text and flags."""

    prefix: Tuple[str, ...]
    args: Tuple[Dict[str, Any], ...]
    help: str = ""
    flags: int = 0

    def usage(self) -> str:
        """E.g. C{osd pool create <pool> [<pg_num:int>] [replicated|erasure]}."""
        parts = list(self.prefix)
        for d in self.args:
            kind = d.get("type", "CephString")
            if kind == "CephChoices":
                text = d.get("strings", "")
            elif kind == "CephBool":
                text = "--%s" % d["name"].replace("_", "-")
            else:
                suffix = {"CephInt": ":int", "CephFloat": ":float"}.get(kind, "")
                text = "<%s%s>" % (d["name"], suffix)
            if d.get("n") == "N":
                text += "..."
            parts.append(text if _required(d) else "[%s]" % text)
        return " ".join(parts)


def parse_descriptions(data) -> List[Signature]:
    """
    The monitor's answer to C{get_command_descriptions} (bytes, text or
    the decoded dict) as a list of L{Signature}, in the monitor's order.
    """
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8")
    if isinstance(data, str):
        data = json.loads(data)
    sigs = []
    for key in sorted(data, key=lambda k: (len(k), k)):
        entry = data[key]
        sig = entry.get("sig", [])
        prefix = []
        args = []
        for part in sig:
            if isinstance(part, str) and not args:
                prefix.append(part)
            elif isinstance(part, dict) and part.get("type") == "CephPrefix" and not args:
                prefix.append(part.get("prefix", ""))
            elif isinstance(part, dict):
                args.append(dict(part))
            else:
                args.append({"name": part, "type": "CephChoices", "strings": part})
        sigs.append(Signature(tuple(prefix), tuple(args), entry.get("help", ""), int(entry.get("flags", 0))))
    return sigs


def build_command(words: Sequence[str], sigs: Sequence[Signature]) -> Dict[str, Any]:
    """
    The JSON command for the typed C{words}.  Raises L{CommandUsageError}
    that names the command and shows its usage (or the commands that
    begin with the same words).
    """
    words = list(words)
    if not words:
        raise CommandUsageError("no command given")
    candidates = [s for s in sigs if s.prefix and list(s.prefix) == words[:len(s.prefix)]
                  and not s.flags & FLAG_OBSOLETE]
    if not candidates:
        raise CommandUsageError(_no_such(words, sigs))
    longest = max(len(s.prefix) for s in candidates)
    candidates = [s for s in candidates if len(s.prefix) == longest]
    errors = []
    for sig in candidates:
        try:
            cmd = _fill(sig, words[longest:])
        except CommandUsageError as e:
            errors.append((sig, str(e)))
            continue
        cmd["prefix"] = " ".join(sig.prefix)
        return cmd
    sig, reason = errors[0]
    raise CommandUsageError("invalid arguments for '%s': %s; usage: %s"
                            % (" ".join(sig.prefix), reason, " | ".join(s.usage() for s, _ in errors)))


def _no_such(words, sigs) -> str:
    best: List[Signature] = []
    for n in range(len(words), 0, -1):
        best = [s for s in sigs if list(s.prefix[:n]) == words[:n] and not s.flags & (FLAG_OBSOLETE | FLAG_HIDDEN)]
        if best:
            shown = "; ".join(s.usage() for s in best[:8]) + ("; ..." if len(best) > 8 else "")
            return ("'%s' is not a command of this monitor; commands beginning with '%s': %s"
                    % (" ".join(words), " ".join(words[:n]), shown))
    return "'%s' is not a command of this monitor" % " ".join(words)


def _required(d) -> bool:
    return str(d.get("req", "true")).lower() not in ("false", "0")


def _fill(sig: Signature, words: List[str]) -> Dict[str, Any]:
    cmd: Dict[str, Any] = {}
    by_name = {d["name"]: d for d in sig.args}
    positional: List[str] = []
    for w in words:
        if w.startswith("--") and len(w) > 2:
            name, eq, value = w[2:].partition("=")
            name = name.replace("-", "_")
            d = by_name.get(name)
            if d is None:
                raise CommandUsageError("no argument named --%s" % name.replace("_", "-"))
            if not eq:
                if d.get("type") != "CephBool":
                    raise CommandUsageError("--%s needs a value: --%s=VALUE" % (w[2:], w[2:]))
                cmd[name] = True
                continue
            ok, parsed = _convert(d, value)
            if not ok:
                raise CommandUsageError("--%s=%s: %s" % (w[2:].partition("=")[0], value, parsed))
            if d.get("n") == "N":
                cmd.setdefault(name, []).append(parsed)
            else:
                cmd[name] = parsed
        else:
            positional.append(w)
    i = 0
    for d in sig.args:
        name = d["name"]
        if name in cmd:
            continue
        if d.get("n") == "N":
            values = []
            while i < len(positional):
                ok, parsed = _convert(d, positional[i])
                if not ok:
                    break
                values.append(parsed)
                i += 1
            if values:
                cmd[name] = values
            elif _required(d):
                raise CommandUsageError(_missing(d, positional[i] if i < len(positional) else None))
            continue
        if i < len(positional):
            ok, parsed = _convert(d, positional[i])
            if ok:
                cmd[name] = parsed
                i += 1
                continue
            if _required(d):
                raise CommandUsageError("<%s>: %r %s" % (name, positional[i], parsed))
            continue
        if _required(d):
            raise CommandUsageError(_missing(d, None))
    if i < len(positional):
        raise CommandUsageError("unexpected %r" % positional[i])
    return cmd


def _missing(d, word: Optional[str]) -> str:
    if word is None:
        return "<%s> is missing" % d["name"]
    return "<%s>: %r does not fit" % (d["name"], word)


def _range_ok(d, value) -> Optional[str]:
    limits = [p for p in str(d.get("range", "")).split("|") if p != ""]
    if limits and value < float(limits[0]):
        return "is below %s" % limits[0]
    if len(limits) > 1 and value > float(limits[1]):
        return "is above %s" % limits[1]
    return None


def _convert(d, word: str) -> Tuple[bool, Any]:
    """(True, typed value) or (False, why not)."""
    kind = d.get("type", "CephString")
    if kind == "CephInt":
        if not re.fullmatch(r"-?\d+", word):
            return False, "is not an integer"
        value: Any = int(word)
        problem = _range_ok(d, value)
        return (False, problem) if problem else (True, value)
    if kind == "CephFloat":
        try:
            value = float(word)
        except ValueError:
            return False, "is not a number"
        problem = _range_ok(d, value)
        return (False, problem) if problem else (True, value)
    if kind == "CephChoices":
        choices = str(d.get("strings", "")).split("|")
        return (True, word) if word in choices else (False, "is not one of %s" % ", ".join(choices))
    if kind == "CephBool":
        lowered = word.lower()
        if lowered in ("true", "false"):
            return True, lowered == "true"
        return False, "is not true or false"
    if kind == "CephOsdName":
        m = re.fullmatch(r"(?:osd\.)?(\d+)", word)
        return (True, int(m.group(1))) if m else (False, "is not an OSD (osd.N or N)")
    if kind == "CephName":
        ok = word == "*" or re.fullmatch(r"(mon|osd|mds|mgr|client|auth|rgw)\.\S+", word) is not None
        return (True, word) if ok else (False, "is not an entity name TYPE.ID")
    if kind == "CephPgid":
        ok = re.fullmatch(r"\d+\.[0-9a-fA-F]+(s\d+)?", word) is not None
        return (True, word) if ok else (False, "is not a placement group id POOL.SEED")
    if kind == "CephUUID":
        try:
            uuid.UUID(word)
        except ValueError:
            return False, "is not a UUID"
        return True, word
    if kind in ("CephIPAddr", "CephEntityAddr"):
        host = re.sub(r"^(v1|v2|any):", "", word).split("/")[0]
        if host.startswith("["):
            host = host[1:].partition("]")[0]
        elif host.count(":") == 1:
            host = host.partition(":")[0]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False, "is not an IP address"
        return True, word
    goodchars = d.get("goodchars")
    if goodchars and not re.fullmatch("%s*" % goodchars, word):
        return False, "has characters outside %s" % goodchars
    return True, word
