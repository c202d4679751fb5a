"""
Ceph message types by subsystem, with no I/O: L{ping} (MPing), L{mon}
(commands, versions, subscriptions, monmap, config), L{auth} (MAuth),
L{mgr} (manager beacons, maps, commands, daemon reports) and L{osd}
(osdmaps, object operations, backoffs).

Importing this package registers every type with the core's registry
(L{msgr2tx.core.messages.register}), so a received MESSAGE frame of a known
type decodes to its class; the Twisted transport imports it.  Nothing in
L{msgr2tx.core} imports this package: the arrows point down.

The message base class, L{GenericMessage} and the type numbers stay in
L{msgr2tx.core.messages}; they are re-exported here for convenience.
"""

from msgr2tx.core.messages import GenericMessage, Message, PaxosServiceMessage, decode_message, register
from msgr2tx.messages.ping import MPing
from msgr2tx.messages.mon import (
    MMonCommand, MMonCommandAck, MMonGetVersion, MMonGetVersionReply, SubscribeItem, MMonSubscribe,
    MMonSubscribeAck, MMonMap, MConfig,
)
from msgr2tx.messages.auth import MAuth, MAuthReply
from msgr2tx.messages.mgr import (
    MMgrBeacon, MMgrMap, MMgrCommand, MMgrCommandReply, MMgrOpen, MMgrConfigure, MMgrReport, MMgrClose,
)
from msgr2tx.messages.osd import MOSDMap, MOSDOp, MOSDOpReply, MOSDBackoff

__all__ = [
    "GenericMessage", "Message", "PaxosServiceMessage", "decode_message", "register", "MPing", "MMonCommand",
    "MMonCommandAck", "MMonGetVersion", "MMonGetVersionReply", "SubscribeItem", "MMonSubscribe",
    "MMonSubscribeAck", "MMonMap", "MConfig", "MAuth", "MAuthReply", "MMgrBeacon", "MMgrMap", "MMgrCommand",
    "MMgrCommandReply", "MMgrOpen", "MMgrConfigure", "MMgrReport", "MMgrClose", "MOSDMap", "MOSDOp",
    "MOSDOpReply", "MOSDBackoff",
]
