"""Wire numbers of msgr2, as enums so that logs and reprs print names."""

import enum


class Tag(enum.IntEnum):
    """Frame tags (the first byte of every preamble)."""

    HELLO = 1
    AUTH_REQUEST = 2
    AUTH_BAD_METHOD = 3
    AUTH_REPLY_MORE = 4
    AUTH_REQUEST_MORE = 5
    AUTH_DONE = 6
    AUTH_SIGNATURE = 7
    CLIENT_IDENT = 8
    SERVER_IDENT = 9
    IDENT_MISSING_FEATURES = 10
    SESSION_RECONNECT = 11
    SESSION_RESET = 12
    SESSION_RETRY = 13
    SESSION_RETRY_GLOBAL = 14
    SESSION_RECONNECT_OK = 15
    WAIT = 16
    MESSAGE = 17
    KEEPALIVE2 = 18
    KEEPALIVE2_ACK = 19
    ACK = 20
    COMPRESSION_REQUEST = 21
    COMPRESSION_DONE = 22


#: Every tag value, for the fast membership test on the receive path.
KNOWN_TAGS = frozenset(int(t) for t in Tag)


class Msgr2Feature(enum.IntFlag):
    """Feature bits exchanged in the banner (their own namespace)."""

    REVISION_1 = 1 << 0
    COMPRESSION = 1 << 1
    #: msgr2tx's own bit (not Ceph's): the peer takes a fast reconnect
    #: (session resume, docs/protocol.md "Fast reconnect"); only ever
    #: advertised as supported, never required, so a Ceph peer ignores it
    MSGR2TX_FAST_RECONNECT = 1 << 48


class ConnectionMode(enum.IntEnum):
    UNKNOWN = 0
    CRC = 1
    SECURE = 2

    @classmethod
    def parse(cls, text: str) -> "ConnectionMode":
        try:
            return {"crc": cls.CRC, "secure": cls.SECURE}[text.strip().lower()]
        except KeyError:
            raise ValueError("unknown connection mode %r (crc, secure)" % (text,)) from None


class AuthMethod(enum.IntEnum):
    UNKNOWN = 0
    NONE = 1
    CEPHX = 2
    GSS = 4
    #: msgr2tx's private method: resume a session with the key of an earlier
    #: connection (docs/protocol.md "Fast reconnect"); only offered to a
    #: peer whose banner has L{Msgr2Feature.MSGR2TX_FAST_RECONNECT}
    MSGR2TX_RESUME = 0x6D327478


# Banner
BANNER_PREFIX = b"ceph v2\n"
MSGR1_BANNER_PREFIX = b"ceph v0"
BANNER_PAYLOAD_LEN = 16

# Framing
PREAMBLE_SIZE = 32
MAX_NUM_SEGMENTS = 4
CRC_SIZE = 4
EPILOGUE_CRC_REV0_SIZE = 1 + 4 * 4
EPILOGUE_CRC_REV1_SIZE = 1 + 3 * 4
EPILOGUE_SECURE_SIZE = 16
GCM_TAG_SIZE = 16
SECURE_BLOCK = 16
PREAMBLE_INLINE_SIZE = 48

SEGMENT_ALIGN_DEFAULT = 8
SEGMENT_ALIGN_PAGE = 4096

LATE_FLAG_ABORTED = 0x1          # rev0 late_flags bit
LATE_STATUS_ABORTED = 0x1        # rev1 late_status low nibble
LATE_STATUS_COMPLETE = 0xE
LATE_STATUS_ABORTED_MASK = 0xF

FLAG_EARLY_DATA_COMPRESSED = 0x1  # preamble flags bit

# CLIENT_IDENT / SERVER_IDENT flags
IDENT_FLAG_LOSSY = 0x1

# AUTH modes inside auth payloads
AUTH_MODE_AUTHORIZER = 1
AUTH_MODE_MON = 10

# Connection secret length asked of the auth method in secure mode
SECURE_CONNECTION_SECRET_LEN = 64
