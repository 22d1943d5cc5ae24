"""Drive a coibox IMAP server the way a desktop client does, with Python's imaplib.

Usage: imap_session.py HOST PORT USER PASSWORD MESSAGE-ID
Connects to the STARTTLS port, checks that LOGIN is refused before TLS, then logs in,
finds the message by its Message-ID, reads it, flags it, moves it to Archive and checks
the result. Prints one line per step ("STEP result") for the Go test to check; exits
non-zero on the first unexpected reply.
"""

import imaplib
import ssl
import sys


def check(step, typ, data, want="OK"):
    if typ != want:
        sys.exit("%s: %s %r" % (step, typ, data))
    print(step, typ)


def main():
    host, port, user, password, msgid = sys.argv[1:6]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test server's certificate is self-signed

    imap = imaplib.IMAP4(host, int(port), timeout=30)
    caps = imap.capabilities
    print("PRETLS", " ".join(caps))
    try:
        imap.login(user, password)
        sys.exit("LOGIN before STARTTLS was accepted")
    except imaplib.IMAP4.error as e:
        print("LOGIN-BEFORE-TLS refused", e)
    check("STARTTLS", *imap.starttls(ssl_context=ctx))
    check("LOGIN", *imap.login(user, password))
    print("CAPS", " ".join(imap.capabilities))

    typ, data = imap.list()
    check("LIST", typ, data)
    names = [line.decode().rsplit(" ", 1)[-1].strip('"') for line in data]
    print("MAILBOXES", " ".join(sorted(names)))

    check("SELECT", *imap.select("INBOX"))
    typ, data = imap.uid("SEARCH", None, "HEADER", "Message-ID", msgid)
    check("SEARCH", typ, data)
    uids = data[0].split()
    if len(uids) != 1:
        sys.exit("SEARCH found %r" % data)
    uid = uids[0].decode()
    print("FOUND", uid)

    typ, data = imap.uid("FETCH", uid, "(FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY[])")
    check("FETCH", typ, data)
    # imaplib gives one (prefix, literal) pair per literal in the reply.
    lits = {prefix.split(b" ")[-2]: lit for prefix, lit in (d for d in data if isinstance(d, tuple))}
    subject, raw = lits.get(b"(SUBJECT)]", b""), lits.get(b"BODY[]", b"")
    print("SUBJECT", subject.decode().strip())
    print("BODY", len(raw), "bytes", "has-received" if raw.startswith(b"Received:") else "no-received")

    typ, data = imap.uid("FETCH", uid, "(FLAGS)")
    check("FETCH-FLAGS", typ, data)
    print("FLAGS-AFTER-READ", data[0].decode())

    check("STORE", *imap.uid("STORE", uid, "+FLAGS", r"(\Flagged)"))
    check("MOVE", *imap.uid("MOVE", uid, "Archive"))
    typ, data = imap.status("INBOX", "(MESSAGES)")
    check("STATUS-INBOX", typ, data)
    print("INBOX-STATUS", data[0].decode())
    check("SELECT-ARCHIVE", *imap.select("Archive"))
    typ, data = imap.uid("SEARCH", None, "FLAGGED", "SEEN")
    check("SEARCH-ARCHIVE", typ, data)
    print("ARCHIVE-FLAGGED-SEEN", len(data[0].split()))
    imap.logout()
    print("LOGOUT OK")


if __name__ == "__main__":
    main()
