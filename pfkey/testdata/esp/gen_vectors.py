#!/usr/bin/env python3
"""Builds ESP test packets with an implementation independent of racoon3.

Primitives come from OpenSSL through python3-cryptography; the ESP framing
below follows RFC 4303 §2 (padding 1, 2, 3, ...), RFC 4106 §5 / RFC 7634 §2
(AEAD nonce salt||IV, AAD SPI||seq or SPI||seq_hi||seq_lo) and RFC 4303
§3.3.2.1 (HMAC over SPI..ciphertext, then seq_hi when ESN is on). The inner
packet is the ICMP echo request of the strongSwan capture.

Output (vectors.txt), one vector per line, '|'-separated:
name|encr_id|key_bits|auth_id|encr_key|auth_key|esn|spi|seq64|packet
Run: python3 gen_vectors.py > vectors.txt
"""
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

HERE = os.path.dirname(os.path.abspath(__file__))
INNER = open(os.path.join(HERE, "strongswan-gcm128-7b371abe-seq1.inner.bin"), "rb").read()


def key(n, start):
    return bytes((start + i) % 256 for i in range(n))


def payload(block, nh=4):
    n = len(INNER) + 2
    pad = (-n) % block
    return INNER + bytes(range(1, pad + 1)) + bytes([pad, nh])


def aead(name, encr_id, bits, spi, seq, esn):
    k = key(bits // 8, 0x10)
    salt = bytes.fromhex("a1b2c3d4")
    iv = seq.to_bytes(8, "big")
    hdr = spi.to_bytes(4, "big") + (seq & 0xFFFFFFFF).to_bytes(4, "big")
    aad = spi.to_bytes(4, "big") + (seq.to_bytes(8, "big") if esn else hdr[4:])
    impl = ChaCha20Poly1305(k) if encr_id == 28 else AESGCM(k)
    ct = impl.encrypt(salt + iv, payload(4), aad)
    return (name, encr_id, bits, 0, k + salt, b"", esn, spi, seq, hdr + iv + ct)


def cbc(name, bits, auth_id, spi, seq, esn):
    k = key(bits // 8, 0x20)
    digest, klen, icv = {2: (hashlib.sha1, 20, 12), 12: (hashlib.sha256, 32, 16),
                         13: (hashlib.sha384, 48, 24), 14: (hashlib.sha512, 64, 32)}[auth_id]
    ak = key(klen, 0x40)
    iv = key(16, 0x90)
    hdr = spi.to_bytes(4, "big") + (seq & 0xFFFFFFFF).to_bytes(4, "big")
    enc = Cipher(algorithms.AES(k), modes.CBC(iv)).encryptor()
    ct = enc.update(payload(16)) + enc.finalize()
    covered = hdr + iv + ct
    mac = hmac.new(ak, covered + ((seq >> 32).to_bytes(4, "big") if esn else b""), digest).digest()
    return (name, 12, bits, auth_id, k, ak, esn, spi, seq, covered + mac[:icv])


VECTORS = [
    aead("aes-gcm-16-256", 20, 256, 0x01000001, 1, False),
    aead("chacha20-poly1305", 28, 256, 0x01000002, 7, False),
    aead("aes-gcm-16-128-esn", 20, 128, 0x01000003, (1 << 32) + 5, True),
    cbc("aes-cbc-128-hmac-sha1-96", 128, 2, 0x02000001, 1, False),
    cbc("aes-cbc-256-hmac-sha2-256-128", 256, 12, 0x02000002, 2, False),
    cbc("aes-cbc-128-hmac-sha2-384-192", 128, 13, 0x02000003, 3, False),
    cbc("aes-cbc-256-hmac-sha2-512-256", 256, 14, 0x02000004, 4, False),
    cbc("aes-cbc-128-hmac-sha2-256-128-esn", 128, 12, 0x02000005, (3 << 32) + 9, True),
]

for (name, encr, bits, auth, ek, ak, esn, spi, seq, pkt) in VECTORS:
    print("|".join([name, str(encr), str(bits), str(auth), ek.hex(), ak.hex(),
                    "1" if esn else "0", "%08x" % spi, str(seq), pkt.hex()]))
