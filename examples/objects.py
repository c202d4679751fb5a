"""
Write, read and list RADOS objects from Twisted, with no librados.

    python examples/objects.py --mon v2:127.0.0.1:3300 --pool data
    python examples/objects.py --mon v2:10.0.0.1:3300 --pool data \\
        --auth cephx:keyring=/etc/ceph/ceph.client.admin.keyring

Prints one JSON line per step; exits 0, or 1 with the error on stderr.
"""

import argparse
import errno
import json
import sys

from twisted.internet import defer, task

from msgr2tx.core.constants import AuthMethod, ConnectionMode
from msgr2tx.errors import AuthBadMethod, Msgr2Error, ObjectNotFound
from msgr2tx.rados import Rados


async def main(reactor, args):
    rados = Rados(reactor, args.mon, auth=args.auth, name=args.name)
    await rados.connect()
    try:
        ioctx = rados.open_ioctx(args.pool)

        await ioctx.write_full("hello", b"Hello, world")
        await ioctx.write("hello", b"RADOS", 7)               # overwrite 5 bytes at offset 7
        data = await ioctx.read("hello")
        st = await ioctx.stat("hello")
        print(json.dumps({"read": data.decode(), "size": st.size, "mtime": st.mtime}))

        await ioctx.setxattr("hello", "user.lang", b"en")
        await ioctx.omap_set("hello", {"greeting": b"hi", "farewell": b"bye"})
        print(json.dumps({"xattr": (await ioctx.getxattr("hello", "user.lang")).decode(),
                          "omap": {k: v.decode() for k, v in (await ioctx.omap_get("hello")).items()}}))

        print(json.dumps({"objects": await ioctx.list_names()}))

        await ioctx.remove("hello")
        try:
            await ioctx.read("hello")
        except ObjectNotFound as e:
            print(json.dumps({"after_remove": type(e).__name__, "errno": e.errno}))
    finally:
        rados.close()


def run(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--mon", required=True, help="a monitor's address, e.g. v2:127.0.0.1:3300")
    parser.add_argument("--pool", required=True, help="the pool to use")
    parser.add_argument("--auth", default="none", help="none (default) or cephx:keyring=PATH")
    parser.add_argument("--name", default="client.admin", help="our entity (default client.admin)")
    args = parser.parse_args(argv)

    def failed(failure):
        failure.trap(Msgr2Error)
        error = failure.value
        if (isinstance(error, AuthBadMethod) and error.method in error.allowed_methods
                and error.result == -errno.EACCES):
            # the method was right: the monitor refused the key itself (the error's words say so)
            pass
        elif isinstance(error, AuthBadMethod) and error.allowed_methods:
            # the monitor names what it allows as numbers: say it in words
            def names(kind, values):
                return ", ".join(kind(v).name.lower() if v in kind._value2member_map_ else str(v)
                                 for v in values)
            allowed = names(AuthMethod, error.allowed_methods)
            hint = ("--auth cephx:keyring=PATH (e.g. /etc/ceph/ceph.client.admin.keyring)"
                    if AuthMethod.CEPHX in error.allowed_methods else "--auth " + allowed.split(", ")[0])
            error = "the monitor at %s refused auth %s; it allows %s (modes %s): use %s" % (
                args.mon, args.auth.partition(":")[0], allowed,
                names(ConnectionMode, error.allowed_modes), hint)
        print("error: %s" % error, file=sys.stderr)
        raise SystemExit(1)

    def go(reactor):
        return defer.ensureDeferred(main(reactor, args)).addErrback(failed)

    task.react(go)


if __name__ == "__main__":
    run()
