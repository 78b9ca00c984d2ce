"""A real IMAP server for the tests: Dovecot (Debian's dovecot-imapd) on 127.0.0.1.

    with Mailbox.running() as mailbox:          # its own config, base_dir, log and maildir
        await mailbox.deliver(raw)              # APPEND into the INBOX, as delivery would
        reader = MailboxReader(mailbox.url, ...)
        assert await mailbox.seen() == {1}      # UIDs flagged \\Seen
        mailbox.stop(); mailbox.start()         # down and back, on the same port and maildir

Plain IMAP (no TLS) with a plain password from a passwd-file; mail is owned by an unprivileged
user (Dovecot refuses to give mail access as root): `nobody` when the tests run as root, else
whoever runs them. `available()` says whether Dovecot is installed (`.ci/run` installs it).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from aioimaplib import aioimaplib

USER = "konference"
PASSWORD = "heslo-pro-testy"
START_SECONDS = 15.0


def dovecot_binary() -> str | None:
    found = shutil.which("dovecot")
    if found:
        return found
    return "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None


def available() -> bool:
    return dovecot_binary() is not None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        binary = dovecot_binary()
        if binary is None:
            raise RuntimeError("Dovecot is not installed (apt-get install dovecot-imapd)")
        self.binary = binary
        self.config = root / "dovecot.conf"
        self.log = root / "dovecot.log"
        self._write_config()

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[Mailbox]:
        # Not pytest's tmp_path: its parents are 0700, and Dovecot's unprivileged processes
        # must reach their sockets and the maildir.
        root = Path(tempfile.mkdtemp(prefix="roundtable-dovecot-"))
        root.chmod(0o755)
        mailbox = cls(root, _free_port())
        try:
            mailbox.start()
            yield mailbox
        finally:
            mailbox.stop()
            shutil.rmtree(root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"imap://{USER}:{PASSWORD}@127.0.0.1:{self.port}/INBOX"

    def url_with(self, *, password: str) -> str:
        return f"imap://{USER}:{password}@127.0.0.1:{self.port}/INBOX"

    def _write_config(self) -> None:
        root = self.root
        if os.geteuid() == 0:
            mail_user = pwd.getpwnam("nobody")
            internal, login = "dovecot", "dovenull"
        else:
            mail_user = pwd.getpwuid(os.geteuid())
            internal = login = mail_user.pw_name
        for folder in ("run", "state", "mail"):
            (root / folder).mkdir(exist_ok=True)
            (root / folder).chmod(0o755)
        home = root / "mail" / USER
        home.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            os.chown(home, mail_user.pw_uid, mail_user.pw_gid)
        (root / "passwd").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{mail_user.pw_uid}:{mail_user.pw_gid}::{home}::\n"
        )
        self.log.touch()
        self.config.write_text(
            f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log}
info_log_path = {self.log}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:{home}/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Dovecot did not start: {self.log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)  # waiting for a server to listen, not for the tests' time
        raise RuntimeError(f"Dovecot did not listen: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # The master is gone; its children follow it at once, but wait until the port is free.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
            except OSError:
                return
            time.sleep(0.05)

    # A client of its own, to deliver mail and look at the flags.

    async def _client(self) -> aioimaplib.IMAP4:
        client = aioimaplib.IMAP4(host="127.0.0.1", port=self.port, timeout=10)
        await client.wait_hello_from_server()
        response = await client.login(USER, PASSWORD)
        assert response.result == "OK", response
        return client

    async def deliver(self, *mails: bytes, flags: str | None = None) -> None:
        """APPEND each mail into the INBOX (as the mail server delivers it)."""
        client = await self._client()
        try:
            for raw in mails:
                response = await client.append(raw, mailbox="INBOX", flags=flags)
                assert response.result == "OK", response
        finally:
            await client.logout()

    async def seen(self) -> set[int]:
        """The UIDs flagged \\Seen."""
        return await self._search("SEEN")

    async def uids(self) -> set[int]:
        return await self._search("ALL")

    async def _search(self, criterion: str) -> set[int]:
        client = await self._client()
        try:
            await client.select("INBOX")
            response = await client.uid_search(criterion)
            assert response.result == "OK", response
            return {int(uid) for uid in response.lines[0].split()}
        finally:
            await client.logout()
