"""
AES-128-GCM micro-benchmark: cryptography's one-shot C{AESGCM.encrypt} /
C{AESGCM.decrypt} (what msgr2tx/core/crypto.py uses) against the streaming
C{Cipher(AES, GCM)} encryptor/decryptor writing with C{update_into} into a
preallocated buffer, and the streaming decryptor writing the plaintext
over the ciphertext (in place, as msgr2tx decrypts large frames), for
64 B, 4 KiB, 64 KiB and 4 MiB.

    python bench/gcm_micro.py [--seconds 0.5]

Each figure is MB/s (10^6 bytes of plaintext per second) of one core,
best of 3 timed runs of about --seconds each.  Both variants do the full
work of a msgr2 GCM operation: a fresh nonce per operation (a new
encryptor or decryptor object for the streaming variant, which is part of
its per-operation cost), tag produced on encrypt and verified on decrypt.
The decrypt variants take the ciphertext as a memoryview slice of a larger
buffer, as the receive path would.  The last line gives, per size, the
ratio streaming/one-shot for encrypt and decrypt (> 1 means update_into
is faster).
"""

import argparse
import os
import struct
import sys
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SIZES = [(64, "64 B"), (4096, "4 KiB"), (65536, "64 KiB"), (4 << 20, "4 MiB")]
TAG = 16
_NONCE = struct.Struct("<IQ")


def _nonces():
    n = 0
    while True:
        n += 1
        yield _NONCE.pack(7, n)


def oneshot_encrypt(key, size):
    aead = AESGCM(key)
    pt = memoryview(bytearray(os.urandom(size)))
    nonces = _nonces()

    def op():
        return aead.encrypt(next(nonces), pt, None)
    return op


def oneshot_decrypt(key, size):
    aead = AESGCM(key)
    pt = os.urandom(size)
    nonce = _NONCE.pack(7, 1)
    framed = memoryview(b"\0" * 32 + aead.encrypt(nonce, pt, None))[32:]  # a slice of a receive buffer

    def op():
        return aead.decrypt(nonce, framed, None)
    return op


def stream_encrypt(key, size):
    algo = algorithms.AES(key)
    pt = memoryview(bytearray(os.urandom(size)))
    out = bytearray(size + 15 + TAG)  # update_into needs len(data) + block_size - 1
    outv = memoryview(out)
    nonces = _nonces()

    def op():
        enc = Cipher(algo, modes.GCM(next(nonces))).encryptor()
        n = enc.update_into(pt, outv)
        enc.finalize()
        outv[n:n + TAG] = enc.tag
        return outv[:n + TAG]
    return op


def stream_decrypt(key, size):
    algo = algorithms.AES(key)
    pt = os.urandom(size)
    nonce = _NONCE.pack(7, 1)
    ct = AESGCM(key).encrypt(nonce, pt, None)
    framed = memoryview(b"\0" * 32 + ct)[32:]
    body, tag = framed[:-TAG], bytes(framed[-TAG:])
    out = bytearray(size + 15)
    outv = memoryview(out)

    def op():
        dec = Cipher(algo, modes.GCM(nonce, tag)).decryptor()
        n = dec.update_into(body, outv)
        dec.finalize()  # verifies the tag
        return outv[:n]
    return op


def inplace_decrypt(key, size):
    """
    What msgr2tx/core/crypto.py:RxCipher.decrypt_in_place does for large
    frames: update_into with the ciphertext's own buffer as the output.
    After the first operation the buffer holds plaintext, so the tag no
    longer verifies; the AES-GCM work per operation is the same.
    """
    algo = algorithms.AES(key)
    nonce = _NONCE.pack(7, 1)
    ct = AESGCM(key).encrypt(nonce, os.urandom(size), None)
    framed = memoryview(bytearray(b"\0" * 32 + ct))[32:]
    body, tag = framed[:-TAG], bytes(framed[-TAG:])

    def op():
        dec = Cipher(algo, modes.GCM(nonce, tag)).decryptor()
        dec.update_into(body, body)
        try:
            dec.finalize()
        except InvalidTag:
            pass
        return body
    return op


def check(key):
    """Both variants agree on ciphertext and plaintext."""
    for size, _ in SIZES:
        nonce = _NONCE.pack(7, 1)
        pt = os.urandom(size)
        a = AESGCM(key).encrypt(nonce, pt, None)
        enc = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
        out = bytearray(size + 15)
        n = enc.update_into(pt, out)
        enc.finalize()
        assert bytes(out[:n]) + enc.tag == a
        assert bytes(stream_encrypt(key, size)()) != a  # fresh nonces: different ciphertext
        dec = Cipher(algorithms.AES(key), modes.GCM(nonce, a[-TAG:])).decryptor()
        n = dec.update_into(a[:-TAG], out)
        dec.finalize()
        assert bytes(out[:n]) == pt


def rate(op, size, seconds):
    """MB/s of op, best of 3 runs of about `seconds`."""
    op()
    n = 1
    while True:  # calibrate
        t = time.perf_counter()
        for _ in range(n):
            op()
        dt = time.perf_counter() - t
        if dt > seconds / 10:
            break
        n *= 4
    reps = max(1, int(n * seconds / dt))
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            op()
        dt = time.perf_counter() - t
        best = max(best, reps * size / dt / 1e6)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=0.5)
    args = p.parse_args(argv)
    key = os.urandom(16)
    check(key)
    variants = [("oneshot encrypt", oneshot_encrypt), ("update_into encrypt", stream_encrypt),
                ("oneshot decrypt", oneshot_decrypt), ("update_into decrypt", stream_decrypt),
                ("in-place decrypt", inplace_decrypt)]
    table = {}
    for size, label in SIZES:
        row = {}
        for name, make in variants:
            row[name] = rate(make(key, size), size, args.seconds)
            common.log("gcm %-8s %-20s %9.1f MB/s", label, name, row[name])
        enc = row["update_into encrypt"] / row["oneshot encrypt"]
        dec = row["update_into decrypt"] / row["oneshot decrypt"]
        common.result("gcm %s" % label, {k: round(v, 1) for k, v in row.items()}, "MB/s",
                      ratio_encrypt=round(enc, 3), ratio_decrypt=round(dec, 3),
                      ratio_in_place=round(row["in-place decrypt"] / row["oneshot decrypt"], 3))
        table[label] = (row, enc, dec)
    print("%-8s %16s %16s %16s %16s %16s" % ("size", "oneshot enc", "update_into enc", "oneshot dec",
                                               "update_into dec", "in-place dec"))
    for label, (row, _, _) in table.items():
        print("%-8s %16.1f %16.1f %16.1f %16.1f %16.1f" % (
            label, row["oneshot encrypt"], row["update_into encrypt"], row["oneshot decrypt"],
            row["update_into decrypt"], row["in-place decrypt"]))
    print("update_into/one-shot (encrypt, decrypt): " + "; ".join(
        "%s %.2fx, %.2fx" % (label, enc, dec) for label, (_, enc, dec) in table.items()))


if __name__ == "__main__":
    main()
