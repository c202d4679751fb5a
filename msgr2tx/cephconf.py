"""
ceph.conf, CEPH_ARGS and C{mon_host} the way Ceph's own clients read them.

No Twisted and no I/O beyond reading the files asked for: the CLI (and a
program embedding msgr2tx) asks this module which conf file to read, what
it says for one entity, which keyring to load and which monitors to dial.

The file syntax follows Ceph 16.2's C{ConfFile} (C{src/common/ConfUtils.cc}),
checked line by line against C{ceph-conf --show-config-value}:

  - C{[section]} headers, then C{key = value} lines; leading whitespace is
    ignored; a file with no header at all holds C{[global]} keys, but a file
    with headers must not have keys before the first one (Ceph refuses it);
  - C{#} and C{;} start a comment anywhere outside quotes;
  - a value in C{"double"} or C{'single'} quotes loses its quotes (no escapes
    inside; a comment character inside quotes is an error, as in Ceph);
  - a backslash at the end of a line joins the next line to the value;
  - in a key, each run of spaces or tabs is one underscore
    (C{mon host} is C{mon_host}); dashes stay dashes, so C{mon-host} in a
    file is a different (unknown) option, as it is to Ceph; keys and section
    names are case sensitive;
  - a key given twice, or a section given twice, keeps the last value;
  - a line that is neither a header nor C{key = value} makes the whole file
    unreadable (L{ConfError}, with the line number), as it does for Ceph.

Precedence for an entity C{TYPE.ID}: C{[TYPE.ID]}, then C{[TYPE]}, then
C{[global]}; the command line comes first of all, then C{CEPH_ARGS}.
Values may use Ceph's metavariables C{$cluster}, C{$type}, C{$id},
C{$name}, C{$host} and C{$home} (also in braces, as ${name}); other C{$words} are
left as they are (Ceph would expand references to other options; we do
not).
"""

import os
import re
import shlex
import socket
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from msgr2tx.errors import ConfError

#: Ceph's default conf search list (C{CEPH_CONF_FILE_DEFAULT} in Ceph 16.2,
#: as C{libceph-common} carries it); C{$data_dir} is
#: C{/var/lib/ceph/$type/$cluster-$id}.
DEFAULT_CONF_SEARCH = ("$data_dir/config", "/etc/ceph/$cluster.conf", "$home/.ceph/$cluster.conf", "$cluster.conf")

#: Ceph's default C{keyring} option (Ceph 16.2 on Linux, as
#: C{ceph-conf --show-config-value keyring} prints it).
DEFAULT_KEYRING = "/etc/ceph/$cluster.$name.keyring,/etc/ceph/$cluster.keyring,/etc/ceph/keyring,/etc/ceph/keyring.bin"

#: Ceph's defaults for the options msgr2tx understands (Ceph 16.2).
DEFAULTS = {
    "auth_client_required": "cephx, none",
    "ms_mon_client_mode": "secure crc",
    "ms_client_mode": "crc secure",
    "ms_learn_addr_from_peer": "true",
    "keyring": DEFAULT_KEYRING,
}

#: The options msgr2tx reads from a conf file; everything else is ignored.
UNDERSTOOD = (
    "mon_host", "keyring", "key", "keyfile", "auth_client_required", "auth_supported",
    "ms_mon_client_mode", "ms_client_mode", "ms_learn_addr_from_peer", "client_mount_timeout",
)

#: The monitor ports Ceph assumes (C{CEPH_MON_PORT_IANA}, C{CEPH_MON_PORT_LEGACY}).
MON_PORT_V2 = 3300
MON_PORT_V1 = 6789

_COMMENT = "#;"


def normalize_key(key: str) -> str:
    """C{"mon  host"} -> C{"mon_host"}: each run of spaces or tabs becomes one underscore."""
    return re.sub(r"[ \t]+", "_", key.strip())


@dataclass
class CephConf:
    """
    A parsed conf file: C{sections} maps a section name to its options
    (normalized key -> raw value, before metavariable expansion).
    """

    sections: Dict[str, Dict[str, str]] = field(default_factory=dict)
    path: Optional[str] = None

    @classmethod
    def parse(cls, text: str, path: Optional[str] = None) -> "CephConf":
        """
        Parse a conf file's text.  Raises L{ConfError} (naming C{path} and
        the line) for a line Ceph would reject.
        """
        conf = cls(path=path)
        section = conf.sections.setdefault("global", {})
        lines = text.splitlines()
        i = 0
        where = path or "<conf>"
        loose_key_line = 0  # the first 'key = value' seen before any [section]
        seen_header = False
        while i < len(lines):
            number = i + 1
            line = lines[i]
            i += 1
            # a trailing backslash joins the next line, whatever it holds
            while line.endswith("\\") and i < len(lines):
                line = line[:-1] + lines[i]
                i += 1
            body = _strip_comment(line, where, number).strip()
            if not body:
                continue
            if body.startswith("["):
                if not body.endswith("]") or len(body) < 3:
                    raise ConfError("%s line %d: a section header is [NAME]" % (where, number))
                if loose_key_line:
                    raise ConfError("%s line %d: 'key = value' before the first [section]; move it under"
                                    " [global] (Ceph reads keys outside sections only in a file without"
                                    " sections)" % (where, loose_key_line))
                seen_header = True
                section = conf.sections.setdefault(body[1:-1], {})
                continue
            key, eq, value = body.partition("=")
            if not eq or not key.strip():
                raise ConfError("%s line %d: expected 'key = value' or [section]" % (where, number))
            if not seen_header and not loose_key_line:
                loose_key_line = number
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            section[normalize_key(key)] = value
        return conf

    @classmethod
    def load(cls, path: str) -> "CephConf":
        """Read and parse a file; L{ConfError} if it cannot be read or parsed."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfError("cannot read %s: %s" % (path, getattr(e, "strerror", None) or e)) from None
        return cls.parse(text, path)

    def lookup(self, option: str, name: str) -> Optional[str]:
        """
        The raw value of C{option} for the entity C{name} (C{TYPE.ID}):
        C{[TYPE.ID]}, then C{[TYPE]}, then C{[global]}; None if unset.
        """
        option = normalize_key(option)
        kind = name.partition(".")[0]
        for section in (name, kind, "global"):
            values = self.sections.get(section)
            if values is not None and option in values:
                return values[option]
        return None


def _strip_comment(line: str, where: str, number: int) -> str:
    """Cut a C{#}/C{;} comment, honouring quotes as Ceph's parser does."""
    quote = None
    for pos, ch in enumerate(line):
        if quote is not None:
            if ch == quote:
                quote = None
            elif ch in _COMMENT:
                raise ConfError("%s line %d: a %r inside quotes (Ceph does not allow it)" % (where, number, ch))
        elif ch in "\"'":
            quote = ch
        elif ch in _COMMENT:
            return line[:pos]
    return line


def expand(value: str, cluster: str, name: str, extra: Optional[Mapping[str, str]] = None) -> str:
    """
    Expand Ceph's metavariables in a value: C{$cluster}, C{$type}, C{$id},
    C{$name}, C{$host}, C{$home} (and C{${...}} forms).  Unknown variables
    stay as written.
    """
    kind, _, ident = name.partition(".")
    variables = {
        "cluster": cluster, "type": kind, "id": ident, "name": name,
        "host": socket.gethostname().split(".")[0], "home": os.path.expanduser("~"),
    }
    variables.update(extra or {})

    def sub(match):
        word = match.group(1) or match.group(2)
        return variables.get(word, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, value)


def split_list(value: str) -> List[str]:
    """Split a file list as Ceph does (commas, semicolons, spaces, tabs)."""
    return [p for p in re.split(r"[,; \t]+", value) if p]


def conf_search_list(cluster: str, name: str, env: Mapping[str, str]) -> List[str]:
    """
    Where Ceph looks for a conf file when no C{-c} is given: C{$CEPH_CONF}
    if set, else L{DEFAULT_CONF_SEARCH} with metavariables expanded.
    """
    if env.get("CEPH_CONF"):
        return split_list(env["CEPH_CONF"])
    kind, _, ident = name.partition(".")
    data_dir = "/var/lib/ceph/%s/%s-%s" % (kind, cluster, ident)
    return [expand(p, cluster, name, {"data_dir": data_dir}) for p in DEFAULT_CONF_SEARCH]


def find_conf(conf_arg: Optional[str], cluster: str, name: str, env: Mapping[str, str]) -> Optional[str]:
    """
    The conf file to read: the first readable one of C{-c} (a comma
    separated list) or L{conf_search_list}.  Raises L{ConfError} when
    C{-c} or C{CEPH_CONF} names files none of which can be read; returns
    None when none of Ceph's default places has one (Ceph goes on with
    its defaults then).
    """
    explicit = conf_arg is not None or bool(env.get("CEPH_CONF"))
    candidates = split_list(conf_arg) if conf_arg is not None else conf_search_list(cluster, name, env)
    for path in candidates:
        # any readable file that is not a directory: Ceph's "-c /dev/null" means an empty conf
        if os.path.exists(path) and not os.path.isdir(path) and os.access(path, os.R_OK):
            return path
    if explicit:
        raise ConfError("cannot read the conf file %s" % " or ".join(candidates or ["''"]))
    return None


def cluster_from_conf_path(path: str) -> Optional[str]:
    """Ceph names the cluster after a C{-c} file called C{NAME.conf}."""
    base = os.path.basename(path)
    return base[:-len(".conf")] if base.endswith(".conf") and len(base) > len(".conf") else None


def ceph_args(env: Mapping[str, str]) -> List[str]:
    """C{CEPH_ARGS} split as a shell would (its options come before the command line's)."""
    try:
        return shlex.split(env.get("CEPH_ARGS", ""))
    except ValueError as e:
        raise ConfError("CEPH_ARGS: %s" % e) from None


def find_keyring(value: str, cluster: str, name: str) -> Tuple[Optional[str], List[str]]:
    """
    The first existing file of a C{keyring} option (after expansion), and
    the list searched.
    """
    searched = [expand(p, cluster, name) for p in split_list(value)]
    for path in searched:
        if os.path.isfile(path):
            return path, searched
    return None, searched


# ---- mon_host ------------------------------------------------------------------


@dataclass(frozen=True)
class MonHost:
    """
    One monitor from C{mon_host}: C{host} is an IP address literal or a DNS
    name (resolved when dialling); C{addrs} are its (type, port) pairs in
    order, type C{"v2"} or C{"v1"}.
    """

    host: str
    addrs: Tuple[Tuple[str, int], ...]
    #: the nonce written after a C{/} (0 for monitors)
    nonce: int = 0

    @property
    def is_name(self) -> bool:
        try:
            ip_address(self.host)
        except ValueError:
            return True
        return False

    @property
    def v2_port(self) -> Optional[int]:
        for kind, port in self.addrs:
            if kind == "v2":
                return port
        return None

    def addrvec_text(self, host: Optional[str] = None) -> str:
        """Ceph's text form, e.g. C{[v2:10.0.0.1:3300/0,v1:10.0.0.1:6789/0]}."""
        host = host or self.host
        h = "[%s]" % host if ":" in host else host
        parts = ["%s:%s:%d/%d" % (kind, h, port, self.nonce) for kind, port in self.addrs]
        return parts[0] if len(parts) == 1 else "[" + ",".join(parts) + "]"

    def __str__(self) -> str:
        return self.addrvec_text()


def parse_mon_host(text: str) -> List[MonHost]:
    """
    Parse C{mon_host} (or C{-m}) as Ceph 16.2's C{MonMap} does: entries
    separated by commas, semicolons or spaces; each an address vector
    C{[v2:IP:PORT,v1:IP:PORT]}, a typed address C{v2:IP[:PORT]}, or a bare
    C{HOST[:PORT]} (C{HOST} an IPv4 address, C{[IPv6]} or a DNS name).
    A bare host without a port gets both C{v2:3300} and C{v1:6789}; port
    6789 means v1 only; any other port means v2 (as C{monmaptool
    --generate} shows).  Raises L{ConfError} for an entry it cannot read.
    """
    hosts: List[MonHost] = []
    for entry in _split_mon_host(text):
        if entry.startswith("[") and (entry[1:3] in ("v1", "v2") or entry.startswith("[any")):
            pairs: List[Tuple[str, int]] = []
            host = None
            nonce = 0
            for part in filter(None, entry[1:-1].split(",")):
                h, kind, port, nonce = _parse_one(part, vec=True)
                if host is not None and h != host:
                    raise ConfError("mon_host: %s mixes hosts in one address vector" % entry)
                host = h
                pairs.append((kind, port))
            if host is None:
                raise ConfError("mon_host: empty address vector %s" % entry)
            hosts.append(MonHost(host, tuple(pairs), nonce))
            continue
        h, kind, port, nonce = _parse_one(entry, vec=False)
        if kind == "any":
            if port == 0:
                hosts.append(MonHost(h, (("v2", MON_PORT_V2), ("v1", MON_PORT_V1)), nonce))
            else:
                hosts.append(MonHost(h, (("v1" if port == MON_PORT_V1 else "v2", port),), nonce))
        else:
            hosts.append(MonHost(h, ((kind, port or (MON_PORT_V2 if kind == "v2" else MON_PORT_V1)),), nonce))
    if not hosts:
        raise ConfError("mon_host is empty")
    return hosts


def _split_mon_host(text: str) -> List[str]:
    entries, depth, current = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if depth == 0 and ch in ", ;\t\n":
            if current:
                entries.append("".join(current))
            current = []
        elif depth > 0 and ch in " \t":
            raise ConfError("mon_host: no spaces inside an address vector, as in Ceph (%r)" % text)
        else:
            current.append(ch)
    if depth != 0:
        raise ConfError("mon_host: unbalanced brackets in %r" % text)
    if current:
        entries.append("".join(current))
    return entries


def _parse_one(text: str, vec: bool) -> Tuple[str, str, int, int]:
    """C{v2:1.2.3.4:3300/0}, C{[::1]:3300}, C{host} -> (host, type, port (0: none given), nonce)."""
    kind = "any"
    rest = text
    for prefix in ("v2:", "v1:", "any:"):
        if rest.startswith(prefix):
            kind, rest = prefix[:-1], rest[len(prefix):]
            break
    if vec and kind == "any" and not text.startswith("any:"):
        raise ConfError("mon_host: %s inside [...] needs a v2: or v1: prefix" % text)
    nonce = 0
    if "/" in rest:
        rest, _, nonce_text = rest.rpartition("/")
        if not nonce_text.isdigit() or int(nonce_text) >= 1 << 32:
            raise ConfError("mon_host: bad nonce in %r" % text)
        nonce = int(nonce_text)
    port_text = ""
    if rest.startswith("["):
        host, _, after = rest[1:].partition("]")
        if after:
            if not after.startswith(":"):
                raise ConfError("mon_host: cannot read %r" % text)
            port_text = after[1:]
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    elif rest.count(":") > 1:
        host = rest  # a bare IPv6 address
    else:
        host = rest
    if not host:
        raise ConfError("mon_host: no host in %r" % text)
    if not re.fullmatch(r"[0-9A-Za-z.:_-]+", host) or (":" in host and _not_ip(host)):
        raise ConfError("mon_host: %r is not an address or a host name" % host)
    port = 0
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfError("mon_host: bad port in %r" % text)
        port = int(port_text)
    return host, kind, port, nonce


def _not_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return True
    return False


# ---- what a client takes from all this ----------------------------------------------


@dataclass
class ClientConf:
    """
    The settings a msgr2tx client uses, resolved from the command line,
    C{CEPH_ARGS}, the conf file and Ceph's defaults (in that order).
    C{sources} says where each came from (for C{-v} and error messages).
    """

    cluster: str = "ceph"
    name: str = "client.admin"
    conf_path: Optional[str] = None
    values: Dict[str, str] = field(default_factory=dict)
    sources: Dict[str, str] = field(default_factory=dict)

    def get(self, option: str) -> Optional[str]:
        return self.values.get(normalize_key(option))

    def mon_hosts(self) -> List[MonHost]:
        """L{parse_mon_host} of C{mon_host}; L{ConfError} when it is unset."""
        text = self.get("mon_host")
        if not text:
            raise ConfError("no monitor address: give -m/--mon-host, or -c a ceph.conf with mon_host "
                            "(searched %s)" % self.sources.get("conf_search", "nothing"))
        return parse_mon_host(text)

    def keyring_path(self) -> Tuple[Optional[str], List[str]]:
        """L{find_keyring} of the C{keyring} option (Ceph's default list if unset)."""
        return find_keyring(self.get("keyring") or DEFAULT_KEYRING, self.cluster, self.name)

    def auth_methods(self) -> List[str]:
        """C{auth_client_required} (or the older C{auth_supported}) as method names."""
        text = self.get("auth_client_required") or self.get("auth_supported") or DEFAULTS["auth_client_required"]
        return split_list(text)

    def modes(self, peer_is_mon: bool) -> List[str]:
        """C{ms_mon_client_mode} or C{ms_client_mode}, as mode names in order."""
        option = "ms_mon_client_mode" if peer_is_mon else "ms_client_mode"
        return split_list(self.get(option) or DEFAULTS[option])


def resolve(conf_arg: Optional[str] = None, cluster: Optional[str] = None, name: str = "client.admin",
            overrides: Optional[Mapping[str, Optional[str]]] = None,
            env: Optional[Mapping[str, str]] = None,
            options: Iterable[str] = UNDERSTOOD) -> ClientConf:
    """
    Find and read the conf file and collect the values of C{options} for
    C{name}: C{overrides} (command line, then CEPH_ARGS, already merged by
    the caller; None values are skipped) win over the file, which wins over
    nothing (defaults are applied by L{ClientConf}'s methods).  Values from
    the file have metavariables expanded.  Raises L{ConfError}.
    """
    env = os.environ if env is None else env
    if conf_arg is not None and cluster is None:
        for p in split_list(conf_arg):
            if os.path.isfile(p):
                cluster = cluster_from_conf_path(p)
                break
    cluster = cluster or "ceph"
    result = ClientConf(cluster=cluster, name=name)
    searched = split_list(conf_arg) if conf_arg is not None else conf_search_list(cluster, name, env)
    result.sources["conf_search"] = ", ".join(searched)
    path = find_conf(conf_arg, cluster, name, env)
    result.conf_path = path
    conf = CephConf.load(path) if path else CephConf()
    for option in options:
        option = normalize_key(option)
        value = (overrides or {}).get(option)
        if value is not None:
            result.values[option] = value
            result.sources[option] = "command line"
            continue
        raw = conf.lookup(option, name)
        if raw is not None:
            result.values[option] = expand(raw, cluster, name)
            result.sources[option] = path or "conf"
    return result


def read_keyfile(path: str) -> str:
    """A C{keyfile}: one base64 key, optionally followed by a newline."""
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfError("cannot read the keyfile %s: %s" % (path, getattr(e, "strerror", None) or e)) from None


def mon_targets(hosts: Sequence[MonHost]) -> List[str]:
    """The v2 address of each monitor that has one, in C{mon_host} order (IP literals only)."""
    return [MonHost(h.host, (("v2", h.v2_port),), h.nonce).addrvec_text() for h in hosts
            if h.v2_port is not None and not h.is_name]
