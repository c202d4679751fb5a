"""
MAuth and MAuthReply: the authentication exchange a client runs with a
monitor after the msgr2 handshake, to get its global_id and service tickets
(src/messages/MAuth.h, MAuthReply.h).

No I/O and no Twisted here.
"""


from msgr2tx.core.encoding import (
    Decoder, Encoder,
)
from msgr2tx.core.messages import (
    CEPH_MSG_AUTH, CEPH_MSG_AUTH_REPLY, Message, PaxosServiceMessage, register,
)


@register
class MAuth(PaxosServiceMessage):
    """
    An authentication request (the msgr1-era path; msgr2 authenticates in
    AUTH frames, but the monitor still accepts MAuth for ticket renewal).
    C{auth_payload} is protocol-specific; with C{protocol} 0 it lists the
    protocols the client supports.  C{monmap_epoch} may be absent on the
    wire, which reads as 0.
    """

    TYPE = CEPH_MSG_AUTH
    NAME = "auth"
    FIELDS = ("protocol", "auth_payload", "monmap_epoch")

    def __init__(self, protocol: int = 0, auth_payload=b"", monmap_epoch: int = 0,
                 **header) -> None:
        super().__init__(**header)
        self.protocol = protocol
        self.auth_payload = bytes(auth_payload)
        self.monmap_epoch = monmap_epoch

    def encode_front(self, enc: Encoder, features: int) -> None:
        self.paxos_encode(enc)
        enc.u32(self.protocol).blob(self.auth_payload).u32(self.monmap_epoch)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.paxos_decode(dec)
        self.protocol = dec.u32()
        self.auth_payload = dec.blob()
        self.monmap_epoch = dec.u32() if dec.remaining() else 0


@register
class MAuthReply(Message):
    """
    The monitor's answer to L{MAuth}: protocol, result (0 or -errno), the
    global id assigned to the client, a protocol-specific blob and a
    message.  Note the wire order: C{result_bl} comes before C{result_msg}.
    Not a PaxosServiceMessage.
    """

    TYPE = CEPH_MSG_AUTH_REPLY
    NAME = "auth_reply"
    FIELDS = ("protocol", "result", "global_id", "result_bl", "result_msg")

    def __init__(self, protocol: int = 0, result: int = 0, global_id: int = 0,
                 result_bl=b"", result_msg: str = "", **header) -> None:
        super().__init__(**header)
        self.protocol = protocol
        self.result = result
        self.global_id = global_id
        self.result_bl = bytes(result_bl)
        self.result_msg = result_msg

    def encode_front(self, enc: Encoder, features: int) -> None:
        enc.u32(self.protocol).i32(self.result).u64(self.global_id)
        enc.blob(self.result_bl).string(self.result_msg)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.protocol = dec.u32()
        self.result = dec.i32()
        self.global_id = dec.u64()
        self.result_bl = dec.blob()
        self.result_msg = dec.string()
