"""Verify every DKIM signature of a message with dkimpy, an implementation independent
of coibox's, looking keys up in the TXT records given instead of in DNS.

Usage: dkimverify.py RECORDS.json MESSAGE
RECORDS.json maps TXT record names (with or without the final dot) to their values.
Prints one line per signature; exits 1 unless there is at least one signature and
every signature verifies.
"""

import json
import re
import sys

import dkim


def main():
    with open(sys.argv[1]) as f:
        records = {k.lower().rstrip("."): v for k, v in json.load(f).items()}
    with open(sys.argv[2], "rb") as f:
        message = f.read()

    def dnsfunc(name, timeout=5):
        key = name.decode() if isinstance(name, bytes) else name
        value = records.get(key.lower().rstrip("."))
        return value.encode() if value is not None else None

    d = dkim.DKIM(message)
    headers = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
    if not headers:
        print("no DKIM-Signature header")
        return 1
    failed = 0
    for i, sig in enumerate(headers):
        tags = dict(re.findall(rb"\b([a-z]+)=([^;]*)", re.sub(rb"\s+", b"", sig)))
        ok = dkim.DKIM(message).verify(idx=i, dnsfunc=dnsfunc)
        print("signature %d: a=%s d=%s s=%s %s" % (
            i, tags.get(b"a", b"?").decode(), tags.get(b"d", b"?").decode(),
            tags.get(b"s", b"?").decode(), "pass" if ok else "FAIL"))
        if not ok:
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
