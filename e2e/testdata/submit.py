"""Submit one message the way a mail client does: STARTTLS, AUTH, then send.

Usage: submit.py HOST PORT USER PASSWORD FROM TO MESSAGE-ID
Prints the server's reply to each step; exits non-zero on any SMTP error.
"""

import smtplib
import ssl
import sys
from email.message import EmailMessage


def main():
    host, port, user, password, sender, rcpt, msgid = sys.argv[1:8]
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = rcpt
    msg["Subject"] = "e2e smtplib"
    msg["Message-ID"] = "<%s>" % msgid
    msg.set_content("Sent by Python smtplib through submission with STARTTLS.\n")

    # The test server's certificate is self-signed.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    with smtplib.SMTP(host, int(port), timeout=30) as s:
        s.ehlo("client.e2e.test")
        if not s.has_extn("starttls"):
            sys.exit("server does not offer STARTTLS")
        code, text = s.starttls(context=ctx)
        print("STARTTLS", code, text.decode())
        s.ehlo("client.e2e.test")
        code, text = s.login(user, password)
        print("AUTH", code, text.decode())
        refused = s.send_message(msg)
        if refused:
            sys.exit("recipients refused: %r" % refused)
        print("SENT", msgid)


if __name__ == "__main__":
    main()
