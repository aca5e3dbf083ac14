# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's SMTP server (aiosmtpd): STARTTLS required before AUTH, one user with a generated
password, and every accepted message kept in a Maildir so that tests can read what was sent.

Usage: python smtp_server.py <host> <port> <state dir>; the state dir holds tls.crt, tls.key,
user and password (written by services/smtp.sh) and receives maildir/.
"""

import asyncio
import mailbox
import os
import signal
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def read(state, name):
    with open(os.path.join(state, name)) as f:
        return f.read().strip()


class Keep(object):
    """Stores each message, with its envelope, in the Maildir."""

    def __init__(self, maildir):
        self.box = mailbox.Maildir(maildir, create=True)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = mailbox.MaildirMessage(envelope.original_content or envelope.content)
        message["X-Lab-Envelope-From"] = envelope.mail_from
        message["X-Lab-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        message["X-Lab-Authenticated-As"] = str(getattr(session, "auth_data", None) and session.auth_data.login.decode())
        self.box.add(message)
        return "250 OK kept"


def main():
    host, port, state = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    user, password = read(state, "user").encode(), read(state, "password").encode()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.join(state, "tls.crt"), os.path.join(state, "tls.key"))
    controller = Controller(Keep(os.path.join(state, "maildir")), hostname=host, port=port, server_hostname="lab-smtp",
                            authenticator=authenticator, auth_require_tls=True, require_starttls=True,
                            tls_context=context, auth_exclude_mechanism=["CRAM-MD5"])
    controller.start()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    print("lab-smtp: listening on %s:%d" % (host, port), flush=True)
    loop.run_forever()
    controller.stop()


if __name__ == "__main__":
    main()
