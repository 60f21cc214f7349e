#!/usr/bin/env python3
"""Regenerate iked/testdata/strongswan-ikev2-*/ from the strongSwan captures.

Usage: python3 extract.py /path/to/captures   (the directory holding ikev2-psk/, ikev2-cert/)

Writes every IKEv2 datagram (non-ESP marker stripped) as NN_<exchange>_<req|resp>.bin and, for
SK-protected ones, the decrypted inner payload chain (padding and Pad Length removed) as
NN_<exchange>_<req|resp>.inner.bin. Decryption uses the keys strongSwan's save-keys plugin logged
(ikev2_decryption_table) and the Python `cryptography` package, an implementation independent of
racoon3, so the inner chains are honest parser vectors. The GCM tag is verified; for CBC the
HMAC is not checked (a wrong key would show as garbage that fails to parse).
"""
import os, subprocess, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

EXCH = {34: "ike_sa_init", 35: "ike_auth", 36: "create_child_sa", 37: "informational"}

def datagrams(pcap):
    out = subprocess.run(["tshark", "-r", pcap, "-Y", "isakmp", "-T", "fields", "-e", "udp.payload"],
                         check=True, capture_output=True, text=True).stdout.split()
    for hexs in out:
        b = bytes.fromhex(hexs)
        if b[:4] == b"\0\0\0\0":
            b = b[4:]
        yield b

def keys(table):
    f = open(table).read().strip().split(",")
    return dict(spi_i=f[0], spi_r=f[1], ei=bytes.fromhex(f[2]), er=bytes.fromhex(f[3]), enc=f[4])

def decrypt(msg, k):
    off = 28
    sk_len = int.from_bytes(msg[off + 2:off + 4], "big")
    body = msg[off + 4:off + sk_len]
    initiator = msg[19] & 0x08
    key = k["ei"] if initiator else k["er"]
    if "GCM" in k["enc"]:
        iv, ct = body[:8], body[8:]
        pt = AESGCM(key[:-4]).decrypt(key[-4:] + iv, ct, msg[:off + 4])
    else:
        iv, ct = body[:16], body[16:-16]
        d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        pt = d.update(ct) + d.finalize()
    pad = pt[-1]
    return pt[:len(pt) - 1 - pad]

def main(root):
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("ikev2-psk", "ikev2-cert"):
        k = keys(os.path.join(root, name, "ikev2_decryption_table"))
        dst = os.path.join(here, "strongswan-" + name)
        os.makedirs(dst, exist_ok=True)
        for i, msg in enumerate(datagrams(os.path.join(root, name, "capture.pcapng"))):
            rr = "resp" if msg[19] & 0x20 else "req"
            stem = "%02d_%s_%s" % (i, EXCH[msg[18]], rr)
            open(os.path.join(dst, stem + ".bin"), "wb").write(msg)
            if msg[16] == 46:
                open(os.path.join(dst, stem + ".inner.bin"), "wb").write(decrypt(msg, k))

if __name__ == "__main__":
    main(sys.argv[1])
