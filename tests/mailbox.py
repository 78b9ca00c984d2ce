"""A real IMAP server for the tests: Dovecot (Debian's dovecot-imapd) on 127.0.0.1.

    with Mailbox.running() as mailbox:          # its own config, base_dir, log and maildir
        await mailbox.deliver(raw)              # APPEND into the INBOX, as delivery would
        reader = MailboxReader(mailbox.url, ...)
        assert await mailbox.seen() == {1}      # UIDs flagged \\Seen
        mailbox.stop(); mailbox.start()         # down and back, on the same port and maildir

Plain IMAP (no TLS) with a plain password from a passwd-file, or with `tls=True` STARTTLS on
that port and IMAPS on `tls_port`, with a certificate of its own for 127.0.0.1 (`ssl_context`
trusts it); mail is owned by an unprivileged
user (Dovecot refuses to give mail access as root): `nobody` when the tests run as root, else
whoever runs them. `available()` says whether Dovecot is installed (`.ci/run` installs it).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aioimaplib import aioimaplib  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=400))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class Mailbox:
    def __init__(self, root: Path, port: int, *, tls: bool = False) -> None:
        self.root = root
        self.port = port
        self.tls = tls
        self.tls_port = _free_port() if tls else 0
        self.certificate: Path | None = None
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
    def running(cls, *, tls: bool = False) -> Iterator[Mailbox]:
        # Not pytest's tmp_path: its parents are 0700, and Dovecot's unprivileged processes
        # must reach their sockets and the maildir.
        root = Path(tempfile.mkdtemp(prefix="roundtable-dovecot-"))
        root.chmod(0o755)
        mailbox = cls(root, _free_port(), tls=tls)
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

    @property
    def imaps_url(self) -> str:
        return f"imaps://{USER}:{PASSWORD}@127.0.0.1:{self.tls_port}/INBOX"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's own certificate (and nothing else)."""
        assert self.certificate is not None
        return ssl.create_default_context(cafile=str(self.certificate))

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
        tls = "ssl = no"
        if self.tls:
            cert, key = _certificate(root)
            self.certificate = cert
            tls = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}"
        self.config.write_text(
            f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log}
info_log_path = {self.log}
protocols = imap
listen = 127.0.0.1
{tls}
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
    address = 127.0.0.1
    port = {self.tls_port}
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


# A test module of a real mailbox: `pytestmark = needs_dovecot`, and the fixture by name
# (`from tests.mailbox import mailbox`).
needs_dovecot = pytest.mark.skipif(
    not available(),
    reason="Dovecot is not installed (Debian's dovecot-imapd; .ci/run installs it as root)",
)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real IMAP mailbox (Dovecot) on 127.0.0.1, for the bot to read."""
    with Mailbox.running() as running:
        yield running
