"""
MPing (C{CEPH_MSG_PING}), the message with an empty front (Ceph's src/messages/MPing.h).

No I/O and no Twisted here.
"""


from msgr2tx.core.messages import (
    CEPH_MSG_PING, Message, register,
)


@register
class MPing(Message):
    """A ping; its front is empty."""

    TYPE = CEPH_MSG_PING
    NAME = "ping"
