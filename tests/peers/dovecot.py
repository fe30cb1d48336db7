"""The IMAP peer: a private Debian dovecot-imapd on a free loopback port, one per session.

Its configuration is generated into a temporary folder (plaintext auth on loopback, no SSL,
a passwd-file with one mailbox user, maildir storage, `base_dir` inside the folder), so it
never touches the system's dovecot. As root (CI), dovecot's own unprivileged users run the
login and mail processes; otherwise everything runs as the current user. Tests put mail in
with IMAP APPEND (`append`) and look at flags with `flags`; `dovecot` empties the mailbox.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers.ports import free_port

DOVECOT = Path("/usr/sbin/dovecot")
USER = "service"
PASSWORD = "imap-test-secret"
START_TIMEOUT_S = 15.0


@dataclass
class DovecotServer:
    host: str
    port: int
    user: str
    password: str
    folder: Path

    def _client(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            client.login(self.user, self.password)
        except imaplib.IMAP4.error as exc:  # dovecot's own log says why
            client.shutdown()
            log = (self.folder / "dovecot.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"IMAP login refused: {exc}; dovecot.log:\n{log}") from exc
        client.select("INBOX")
        return client

    def append(self, raw: bytes, flags: str = "") -> None:
        client = self._client()
        try:
            status, _ = client.append("INBOX", flags or None, None, raw)
            assert status == "OK", status
        finally:
            client.logout()

    def flags(self) -> list[str]:
        """Each message's flags, in mailbox order."""
        client = self._client()
        try:
            _, found = client.search(None, "ALL")
            if not found or not found[0]:
                return []
            status, data = client.fetch("1:*", "(FLAGS)")
            assert status == "OK", status
            return [item.decode() for item in data if isinstance(item, bytes)]
        finally:
            client.logout()

    def reset(self) -> None:
        client = self._client()
        try:
            _, found = client.search(None, "ALL")
            if found and found[0]:
                client.store("1:*", "+FLAGS", "(\\Deleted)")
                client.expunge()
        finally:
            client.logout()


def _config(folder: Path, port: int) -> str:
    if os.getuid() == 0:
        internal, login = "dovecot", "dovenull"
        mail = pwd.getpwnam("nobody")
        uid, gid = mail.pw_uid, mail.pw_gid
        group = grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name
        chroot = ""
    else:
        internal = login = pwd.getpwuid(os.getuid()).pw_name
        uid, gid = os.getuid(), os.getgid()
        group = grp.getgrgid(gid).gr_name
        chroot = "  chroot =\n"
    return f"""
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{folder}/mail/%n
first_valid_uid = 1
first_valid_gid = 1
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {folder}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={folder}/home/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{chroot}}}
"""


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                if sock.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)  # a subprocess start has no event to wait on
    raise RuntimeError(f"dovecot did not listen on {port} within {START_TIMEOUT_S} s")


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    if not DOVECOT.exists():
        pytest.skip("dovecot-imapd is not installed (scripts/install-test-deps)")
    # Not under pytest's tmp_path: dovecot's unprivileged users must reach these folders.
    folder = Path(tempfile.mkdtemp(prefix="contactd-dovecot-"))
    folder.chmod(0o755)
    for sub in ("run", "state", "mail", "home"):
        (folder / sub).mkdir()
    if os.getuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for sub in ("mail", "home"):
            os.chown(folder / sub, nobody.pw_uid, nobody.pw_gid)
    (folder / "users").write_text(f"{USER}:{PASSWORD}\n")
    # Read by dovecot's auth user: made readable whatever umask an earlier test left (with
    # 077 every login failed with "[UNAVAILABLE] Temporary authentication failure").
    (folder / "users").chmod(0o644)
    port = free_port()
    conf = folder / "dovecot.conf"
    conf.write_text(_config(folder, port))
    log = folder / "dovecot.log"
    process = subprocess.Popen([str(DOVECOT), "-F", "-c", str(conf)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, process, log)
        yield DovecotServer("127.0.0.1", port, USER, PASSWORD, folder)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_server: DovecotServer) -> DovecotServer:
    dovecot_server.reset()
    return dovecot_server
