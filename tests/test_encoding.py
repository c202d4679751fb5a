"""
Tests for msgr2tx.core.encoding.

Every expected byte string is written out by hand from Ceph's encoding rules:
little-endian integers, u32-length-prefixed blobs/strings/lists, 6-byte
versioned struct headers (u8 version, u8 compat, u32 length), and
entity_addr_t in its MSG_ADDR2 form (u8 marker 1, struct v1/compat 1, u32
type, u32 nonce, u32 sockaddr length, u16 family little-endian, then the rest
of the Linux sockaddr with the port in network byte order).
"""

import ipaddress

from twisted.trial import unittest

from msgr2tx.core.encoding import (
    AddrType, Decoder, Encoder, EntityName, EntityType, entity_addr_t,
    entity_addrvec_t, entity_name_t, utime_t,
)
from msgr2tx.errors import DecodeError


def h(*chunks: str) -> bytes:
    return bytes.fromhex("".join(chunks).replace(" ", ""))


# v2:127.0.0.1:3300/0
ADDR_V2_LOCALHOST_HEX = (
    "01"                  # marker: MSG_ADDR2 form
    "01 01 1c000000"      # struct v1, compat 1, 28 bytes follow
    "02000000"            # type 2 = msgr2
    "00000000"            # nonce 0
    "10000000"            # sockaddr length 16 (sockaddr_in)
    "0200"                # AF_INET, little-endian
    "0ce4"                # port 3300, big-endian
    "7f000001"            # 127.0.0.1
    "0000000000000000"    # sin_zero
)

# v2:[::1]:3300/5
ADDR_V6_HEX = (
    "01"
    "01 01 28000000"      # 40 bytes follow: 12 + 28
    "02000000"
    "05000000"            # nonce 5
    "1c000000"            # sockaddr length 28 (sockaddr_in6)
    "0a00"                # AF_INET6 = 10, little-endian
    "0ce4"                # port 3300
    "00000000"            # flowinfo
    "00000000000000000000000000000001"  # ::1
    "00000000"            # scope id
)

# a blank address: type 0, nonce 0, family 0, 28-byte sockaddr of zeros
ADDR_BLANK_HEX = (
    "01"
    "01 01 28000000"
    "00000000"
    "00000000"
    "1c000000"
    + "00" * 28
)

# [v2:1.2.3.4:3300/0,v1:1.2.3.4:6789/0]
ADDRVEC_HEX = (
    "02"                  # marker: addrvec
    "02000000"            # two addresses
    "01 0101 1c000000 02000000 00000000 10000000 0200 0ce4 01020304 0000000000000000"
    "01 0101 1c000000 01000000 00000000 10000000 0200 1a85 01020304 0000000000000000"
)


class EncoderPrimitiveTests(unittest.SynchronousTestCase):

    def test_integers_are_little_endian(self):
        enc = Encoder()
        enc.u8(0xAB).u16(0x1234).u32(0x12345678).u64(0x0102030405060708)
        self.assertEqual(enc.getvalue(), h("ab 3412 78563412 0807060504030201"))

    def test_signed_integers(self):
        enc = Encoder()
        enc.i16(-2).i32(-2).i64(-1).i32(0x7FFFFFFF)
        self.assertEqual(enc.getvalue(), h("feff feffffff ffffffffffffffff ffffff7f"))

    def test_bool(self):
        self.assertEqual(Encoder().bool(True).bool(False).getvalue(), h("01 00"))

    def test_blob(self):
        self.assertEqual(Encoder().blob(b"abc").getvalue(), h("03000000 616263"))
        self.assertEqual(Encoder().blob(b"").getvalue(), h("00000000"))

    def test_string_is_utf8_with_byte_length(self):
        self.assertEqual(Encoder().string("h\u00e9").getvalue(), h("03000000 68c3a9"))
        self.assertEqual(Encoder().string(b"xy").getvalue(), h("02000000 7879"))

    def test_u32_list(self):
        self.assertEqual(Encoder().u32_list([1, 2]).getvalue(),
                         h("02000000 01000000 02000000"))
        self.assertEqual(Encoder().u32_list([]).getvalue(), h("00000000"))

    def test_string_list_and_map(self):
        self.assertEqual(Encoder().string_list(["a", "bc"]).getvalue(),
                         h("02000000 01000000 61 02000000 6263"))
        enc = Encoder().map({"k": 7}, lambda e, k: e.string(k), lambda e, v: e.u32(v))
        self.assertEqual(enc.getvalue(), h("01000000 01000000 6b 07000000"))

    def test_versioned_struct_length(self):
        enc = Encoder()
        enc.u8(0xEE)
        pos = enc.start(3, 2)
        enc.u32(7).u16(9)
        enc.finish(pos)
        enc.u8(0xFF)
        self.assertEqual(enc.getvalue(), h("ee 03 02 06000000 07000000 0900 ff"))

    def test_nested_versioned_structs(self):
        enc = Encoder()
        outer = enc.start(2, 1)
        inner = enc.start(1, 1)
        enc.u8(5)
        enc.finish(inner)
        enc.finish(outer)
        self.assertEqual(enc.getvalue(), h("02 01 07000000 01 01 01000000 05"))


class DecoderPrimitiveTests(unittest.SynchronousTestCase):

    def test_integers(self):
        dec = Decoder(h("ab 3412 78563412 0807060504030201 feff feffffff ffffffffffffffff"))
        self.assertEqual(dec.u8(), 0xAB)
        self.assertEqual(dec.u16(), 0x1234)
        self.assertEqual(dec.u32(), 0x12345678)
        self.assertEqual(dec.u64(), 0x0102030405060708)
        self.assertEqual(dec.i16(), -2)
        self.assertEqual(dec.i32(), -2)
        self.assertEqual(dec.i64(), -1)
        self.assertEqual(dec.remaining(), 0)
        dec.expect_end()

    def test_bool_any_nonzero_is_true(self):
        dec = Decoder(h("00 01 02"))
        self.assertEqual([dec.bool(), dec.bool(), dec.bool()], [False, True, True])

    def test_blob_string_lists(self):
        dec = Decoder(h("03000000 616263 03000000 68c3a9 02000000 01000000 02000000"
                        "02000000 01000000 61 02000000 6263"))
        self.assertEqual(dec.blob(), b"abc")
        self.assertEqual(dec.string(), "h\u00e9")
        self.assertEqual(dec.u32_list(), [1, 2])
        self.assertEqual(dec.string_list(), ["a", "bc"])
        dec.expect_end()

    def test_map(self):
        dec = Decoder(h("01000000 01000000 6b 07000000"))
        self.assertEqual(dec.map(lambda d: d.string(), lambda d: d.u32()), {"k": 7})

    def test_offset_and_end_window(self):
        dec = Decoder(h("ff ff 0100 ff"), offset=2, end=4)
        self.assertEqual(dec.u16(), 1)
        self.assertRaises(DecodeError, dec.u8)

    def test_short_integers_raise(self):
        for method, size in (("u8", 1), ("u16", 2), ("u32", 4), ("u64", 8),
                             ("i16", 2), ("i32", 4), ("i64", 8)):
            for n in range(size):
                dec = Decoder(b"\x01" * n)
                self.assertRaises(DecodeError, getattr(dec, method))

    def test_short_blob_raises(self):
        self.assertRaises(DecodeError, Decoder(h("05000000 6162")).blob)
        self.assertRaises(DecodeError, Decoder(h("0500")).blob)

    def test_expect_end_rejects_trailing(self):
        dec = Decoder(h("01000000 00"))
        dec.u32()
        self.assertRaises(DecodeError, dec.expect_end)

    def test_oversized_list_count_raises_without_building_items(self):
        calls = []

        def item(d):
            calls.append(1)
            return d.u8()

        dec = Decoder(h("ffffffff") + b"\x00" * 10)
        self.assertRaises(DecodeError, dec.list, item)
        self.assertEqual(calls, [])
        self.assertRaises(DecodeError, Decoder(h("ffffffff")).u32_list)
        self.assertRaises(DecodeError, Decoder(h("ffffffff")).string_list)
        self.assertRaises(DecodeError, Decoder(h("ffffffff 00")).map,
                          lambda d: d.u8(), lambda d: d.u8())
        # three u32 items do not fit in 8 bytes
        self.assertRaises(DecodeError, Decoder(h("03000000 0100000002000000")).u32_list)

    def test_versioned_struct_roundtrip(self):
        dec = Decoder(h("03 02 06000000 07000000 0900"))
        version, end = dec.start(3)
        self.assertEqual(version, 3)
        self.assertEqual((dec.u32(), dec.u16()), (7, 9))
        dec.finish(end)
        dec.expect_end()

    def test_versioned_struct_skips_unknown_trailing_fields(self):
        # version 5, compat 2, 8 bytes: a field we know (u32 7) and one we do
        # not (u32 0xdeadbeef); then a byte after the struct
        dec = Decoder(h("05 02 08000000 07000000 efbeadde 99"))
        version, end = dec.start(3)
        self.assertEqual(version, 5)
        self.assertEqual(dec.u32(), 7)
        dec.finish(end)
        self.assertEqual(dec.u8(), 0x99)
        dec.expect_end()

    def test_versioned_struct_compat_rejected(self):
        dec = Decoder(h("05 04 04000000 07000000"))
        self.assertRaises(DecodeError, dec.start, 3)

    def test_versioned_struct_compat_equal_accepted(self):
        dec = Decoder(h("05 03 04000000 07000000"))
        self.assertEqual(dec.start(3)[0], 5)

    def test_versioned_struct_overrunning_length(self):
        self.assertRaises(DecodeError, Decoder(h("01 01 05000000 07000000")).start)
        self.assertRaises(DecodeError, Decoder(h("01 01 0400")).start)

    def test_versioned_struct_decoded_past_its_length(self):
        dec = Decoder(h("01 01 02000000 07000000"))
        _, end = dec.start()
        dec.u32()
        self.assertRaises(DecodeError, dec.finish, end)


class EntityAddrTests(unittest.SynchronousTestCase):

    def test_v2_ipv4_exact_bytes(self):
        addr = entity_addr_t.parse("v2:127.0.0.1:3300/0")
        self.assertEqual(addr, entity_addr_t(AddrType.MSGR2, 0, ipaddress.ip_address("127.0.0.1"), 3300))
        enc = Encoder()
        addr.encode(enc)
        self.assertEqual(enc.getvalue(), h(ADDR_V2_LOCALHOST_HEX))

    def test_v2_ipv4_decode(self):
        dec = Decoder(h(ADDR_V2_LOCALHOST_HEX))
        addr = entity_addr_t.decode(dec)
        dec.expect_end()
        self.assertEqual(addr.type, AddrType.MSGR2)
        self.assertEqual(addr.nonce, 0)
        self.assertEqual(addr.host, ipaddress.IPv4Address("127.0.0.1"))
        self.assertEqual(addr.port, 3300)
        self.assertEqual(str(addr), "v2:127.0.0.1:3300/0")

    def test_v1_nonce_and_port(self):
        addr = entity_addr_t.parse("v1:10.0.0.1:6789/1234567")
        enc = Encoder()
        addr.encode(enc)
        self.assertEqual(enc.getvalue(), h(
            "01 0101 1c000000 01000000 87d61200 10000000 0200 1a85 0a000001 0000000000000000"))

    def test_ipv6_exact_bytes(self):
        addr = entity_addr_t.parse("v2:[::1]:3300/5")
        self.assertEqual(addr.family, 10)
        enc = Encoder()
        addr.encode(enc)
        self.assertEqual(enc.getvalue(), h(ADDR_V6_HEX))
        back = entity_addr_t.decode(Decoder(h(ADDR_V6_HEX)))
        self.assertEqual(back, addr)
        self.assertEqual(str(back), "v2:[::1]:3300/5")

    def test_ipv6_without_nonce(self):
        addr = entity_addr_t.parse("v2:[::1]:3300")
        self.assertEqual((addr.type, addr.host, addr.port, addr.nonce),
                         (AddrType.MSGR2, ipaddress.IPv6Address("::1"), 3300, 0))

    def test_blank_address(self):
        blank = entity_addr_t()
        enc = Encoder()
        blank.encode(enc)
        self.assertEqual(enc.getvalue(), h(ADDR_BLANK_HEX))
        back = entity_addr_t.decode(Decoder(h(ADDR_BLANK_HEX)))
        self.assertIsNone(back.host)
        self.assertEqual((back.type, back.nonce, back.family), (0, 0, 0))
        self.assertTrue(back.is_blank_ip())

    def test_zero_length_sockaddr_is_blank(self):
        back = entity_addr_t.decode(Decoder(h("01 0101 0c000000 02000000 03000000 00000000")))
        self.assertEqual((back.type, back.nonce, back.host), (AddrType.MSGR2, 3, None))

    def test_unknown_trailing_struct_fields_skipped(self):
        # same address, struct length 32 with 4 extra bytes a future version added
        data = h("01 02 01 20000000 02000000 00000000 10000000 0200 0ce4 7f000001"
                 "0000000000000000 aabbccdd 42")
        dec = Decoder(data)
        addr = entity_addr_t.decode(dec)
        self.assertEqual(str(addr), "v2:127.0.0.1:3300/0")
        self.assertEqual(dec.u8(), 0x42)

    def test_one_byte_sockaddr_rejected(self):
        # Ceph throws "elen smaller than family len" for a sockaddr length
        # below the 2-byte family
        data = h("01 0101 0d000000 02000000 00000000 01000000 02")
        self.assertRaises(DecodeError, entity_addr_t.decode, Decoder(data))

    def test_newer_compat_rejected(self):
        data = bytearray(h(ADDR_V2_LOCALHOST_HEX))
        data[2] = 2  # compat 2 > 1
        self.assertRaises(DecodeError, entity_addr_t.decode, Decoder(bytes(data)))

    def test_bad_marker_rejected(self):
        data = bytearray(h(ADDR_V2_LOCALHOST_HEX))
        data[0] = 3
        self.assertRaises(DecodeError, entity_addr_t.decode, Decoder(bytes(data)))

    def test_legacy_marker_zero(self):
        # legacy ceph_entity_addr: u32 type (0), u32 nonce, 128-byte
        # sockaddr_storage with the family in network byte order
        ss = h("0002 1a85 0a000001") + bytes(120)
        data = h("00000000 07000000") + ss + h("55")
        dec = Decoder(data)
        addr = entity_addr_t.decode(dec)
        self.assertEqual(addr.type, AddrType.LEGACY)
        self.assertEqual(addr.nonce, 7)
        self.assertEqual(addr.host, ipaddress.IPv4Address("10.0.0.1"))
        self.assertEqual(addr.port, 6789)
        self.assertEqual(dec.u8(), 0x55)

    def test_legacy_marker_zero_ipv6(self):
        ss = (h("000a 0ce4 00000000") + ipaddress.IPv6Address("fe80::2").packed
              + h("00000000")) + bytes(100)
        addr = entity_addr_t.decode(Decoder(h("00000000 09000000") + ss))
        self.assertEqual((addr.type, addr.nonce, addr.host, addr.port),
                         (AddrType.LEGACY, 9, ipaddress.IPv6Address("fe80::2"), 3300))

    def test_legacy_blank_is_type_none(self):
        # Ceph's decode_legacy_addr_after_marker types an AF_UNSPEC address
        # TYPE_NONE (0), not TYPE_LEGACY
        addr = entity_addr_t.decode(Decoder(bytes(8 + 128)))
        self.assertIsNone(addr.host)
        self.assertEqual(addr.type, AddrType.NONE)

    def test_truncation_at_every_offset(self):
        for hexstr in (ADDR_V2_LOCALHOST_HEX, ADDR_V6_HEX, ADDR_BLANK_HEX):
            data = h(hexstr)
            for i in range(len(data)):
                self.assertRaises(DecodeError, entity_addr_t.decode, Decoder(data[:i]))

    def test_legacy_truncation_at_every_offset(self):
        data = h("00000000 07000000 0002 1a85 0a000001") + bytes(120)
        for i in range(len(data)):
            self.assertRaises(DecodeError, entity_addr_t.decode, Decoder(data[:i]))

    def test_parse_forms(self):
        a = entity_addr_t.parse("127.0.0.1")
        self.assertEqual((a.type, a.port), (AddrType.MSGR2, 3300))
        b = entity_addr_t.parse("127.0.0.1:6789", default_type=AddrType.LEGACY)
        self.assertEqual((b.type, b.port), (AddrType.LEGACY, 6789))
        self.assertRaises(ValueError, entity_addr_t.parse, "v2:127.0.0.1:70000")
        self.assertRaises(ValueError, entity_addr_t.parse, "v2:not-an-ip:3300")


class EntityAddrvecTests(unittest.SynchronousTestCase):

    def test_parse_and_encode(self):
        vec = entity_addrvec_t.parse("[v2:1.2.3.4:3300/0,v1:1.2.3.4:6789/0]")
        self.assertEqual([(a.type, str(a.host), a.port) for a in vec.addrs],
                         [(2, "1.2.3.4", 3300), (1, "1.2.3.4", 6789)])
        enc = Encoder()
        vec.encode(enc)
        self.assertEqual(enc.getvalue(), h(ADDRVEC_HEX))
        self.assertEqual(str(vec), "[v2:1.2.3.4:3300/0,v1:1.2.3.4:6789/0]")
        self.assertEqual(vec.msgr2_addr(), vec.addrs[0])

    def test_parse_single_ipv6(self):
        vec = entity_addrvec_t.parse("v2:[::1]:3300")
        self.assertEqual(len(vec.addrs), 1)
        self.assertEqual((vec.addrs[0].host, vec.addrs[0].port),
                         (ipaddress.IPv6Address("::1"), 3300))

    def test_parse_bracketed_ipv6_list(self):
        vec = entity_addrvec_t.parse("[v2:[::1]:3300/0,v1:[::1]:6789/0]")
        self.assertEqual([(a.type, a.port) for a in vec.addrs], [(2, 3300), (1, 6789)])

    def test_decode(self):
        dec = Decoder(h(ADDRVEC_HEX))
        vec = entity_addrvec_t.decode(dec)
        dec.expect_end()
        self.assertEqual(vec, entity_addrvec_t.parse("[v2:1.2.3.4:3300/0,v1:1.2.3.4:6789/0]"))

    def test_empty(self):
        enc = Encoder()
        entity_addrvec_t().encode(enc)
        self.assertEqual(enc.getvalue(), h("02 00000000"))
        self.assertEqual(entity_addrvec_t.decode(Decoder(h("02 00000000"))).addrs, ())

    def test_single_addr_marker_one(self):
        vec = entity_addrvec_t.decode(Decoder(h(ADDR_V2_LOCALHOST_HEX)))
        self.assertEqual([str(a) for a in vec.addrs], ["v2:127.0.0.1:3300/0"])

    def test_single_legacy_marker_zero(self):
        data = h("00000000 07000000 0002 1a85 0a000001") + bytes(120)
        vec = entity_addrvec_t.decode(Decoder(data))
        self.assertEqual([(a.type, a.nonce, str(a.host), a.port) for a in vec.addrs],
                         [(AddrType.LEGACY, 7, "10.0.0.1", 6789)])

    def test_bad_marker(self):
        self.assertRaises(DecodeError, entity_addrvec_t.decode, Decoder(h("03 00000000")))

    def test_truncation_at_every_offset(self):
        data = h(ADDRVEC_HEX)
        for i in range(len(data)):
            self.assertRaises(DecodeError, entity_addrvec_t.decode, Decoder(data[:i]))

    def test_oversized_count(self):
        self.assertRaises(DecodeError, entity_addrvec_t.decode,
                          Decoder(h("02 ffffffff") + h(ADDR_V2_LOCALHOST_HEX)))


class EntityNameTests(unittest.SynchronousTestCase):

    def test_entity_name(self):
        name = EntityName.parse("client.admin")
        self.assertEqual(name, EntityName(EntityType.CLIENT, "admin"))
        self.assertEqual(str(name), "client.admin")
        enc = Encoder()
        name.encode(enc)
        self.assertEqual(enc.getvalue(), h("08000000 05000000 61646d696e"))
        self.assertEqual(EntityName.decode(Decoder(enc.getvalue())), name)

    def test_entity_name_types(self):
        self.assertEqual(EntityName.parse("mon.a").type, 1)
        self.assertEqual(EntityName.parse("osd.0").type, 4)
        self.assertEqual(EntityName.parse("mgr.x").type, 0x10)
        self.assertRaises(ValueError, EntityName.parse, "admin")
        self.assertRaises(ValueError, EntityName.parse, "bogus.admin")

    def test_entity_name_truncated(self):
        data = h("08000000 05000000 61646d696e")
        for i in range(len(data)):
            self.assertRaises(DecodeError, EntityName.decode, Decoder(data[:i]))

    def test_entity_name_t(self):
        name = entity_name_t(EntityType.CLIENT, 4123)
        enc = Encoder()
        name.encode(enc)
        self.assertEqual(enc.getvalue(), h("08 1b10000000000000"))
        self.assertEqual(str(name), "client.4123")
        self.assertEqual(entity_name_t.decode(Decoder(h("04 ffffffffffffffff"))),
                         entity_name_t(EntityType.OSD, -1))

    def test_utime(self):
        enc = Encoder()
        utime_t(1, 2).encode(enc)
        self.assertEqual(enc.getvalue(), h("01000000 02000000"))
        self.assertEqual(utime_t.decode(Decoder(h("78563412 ff000000"))), utime_t(0x12345678, 255))
        self.assertEqual(utime_t.from_float(1.5), utime_t(1, 500000000))
        self.assertEqual(utime_t(3, 250000000).to_float(), 3.25)
        self.assertRaises(DecodeError, utime_t.decode, Decoder(h("01000000 0200")))
