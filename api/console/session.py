"""Console sessions: a regulator's bearer token, entered once, kept on the server.

The browser holds only a random session id in a cookie (HttpOnly, SameSite=Strict, Path
/console, Secure over TLS); the token stays in a file of its own under
``SUYUAN_HOME/console/sessions/`` named by the id's SHA-256, so every worker of one
server shares the sessions, logging out deletes the file (the cookie is worthless from
then on), and a directory listing shows no cookie. Each request checks the token again
(expiry, revocation, roles) before it reads anything. Every form that changes something
carries a CSRF token: the session's own random one, or before login an HMAC of a
pre-login nonce cookie under ``SUYUAN_HOME/console/secret.key``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from ledger.core.errors import ConfigError

COOKIE = "suyuan_console"
LOGIN_COOKIE = "suyuan_console_login"
PATH = "/console"
LIFETIME = 8 * 3600  # a working day; never past the token's own expiry
LOGIN_LIFETIME = 3600
SECRET_BYTES = 32


@dataclass(frozen=True)
class Session:
    sid: str
    token: str
    party: str
    csrf: str
    expires: int  # unix seconds


def _new_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _private_write(path: Path, data: bytes) -> None:
    """A new file only its owner reads, written aside and linked into place whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink()


class Sessions:
    """The console's sessions in ``home/console``; ConfigError when it cannot keep them."""

    def __init__(self, home: Path | None) -> None:
        if home is None:
            raise ConfigError(
                "the regulator console keeps its sessions in SUYUAN_HOME, and this "
                "server has none; start it with SUYUAN_HOME set"
            )
        self.dir = home / "console"
        self.sessions = self.dir / "sessions"
        try:
            self.sessions.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise ConfigError(
                f"cannot make {self.sessions} ({e.strerror}); the regulator console keeps its sessions there"
            ) from None
        self.secret = self._secret(self.dir / "secret.key")

    @staticmethod
    def _secret(path: Path) -> bytes:
        if not path.exists():
            _private_write(path, secrets.token_bytes(SECRET_BYTES))
        raw = path.read_bytes()
        if len(raw) != SECRET_BYTES:
            raise ConfigError(
                f"{path} is damaged ({len(raw)} bytes, not {SECRET_BYTES}); delete "
                "it and a new one is made (open login forms must be reloaded)"
            )
        return raw

    def _file(self, sid: str) -> Path:
        return self.sessions / hashlib.sha256(sid.encode()).hexdigest()

    # --- sessions ---------------------------------------------------------------------------

    def start(self, *, token: str, party: str, token_expires: int) -> Session:
        self.prune()
        s = Session(_new_id(), token, party, _new_id(), min(int(time.time()) + LIFETIME, token_expires))
        _private_write(
            self._file(s.sid),
            json.dumps({"token": s.token, "party": s.party, "csrf": s.csrf, "expires": s.expires}).encode(),
        )
        return s

    def get(self, sid: str | None) -> Session | None:
        """The live session of a cookie value, or None (unknown, ended or expired)."""
        if not sid or len(sid) > 100:
            return None
        path = self._file(sid)
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or int(doc.get("expires", 0)) <= time.time():
            self.end(sid)
            return None
        return Session(sid, str(doc["token"]), str(doc["party"]), str(doc["csrf"]), int(doc["expires"]))

    def end(self, sid: str) -> None:
        with contextlib.suppress(OSError):
            self._file(sid).unlink()

    def prune(self) -> None:
        """Forget expired sessions (run at each login)."""
        now = time.time()
        for path in self.sessions.iterdir():
            try:
                if path.name.startswith(".") or json.loads(path.read_bytes())["expires"] <= now:
                    path.unlink()
            except (OSError, ValueError, KeyError, TypeError):
                with contextlib.suppress(OSError):
                    path.unlink()

    # --- CSRF ---------------------------------------------------------------------------------

    def login_csrf(self, nonce: str) -> str:
        return hmac.new(self.secret, b"console-login\n" + nonce.encode(), "sha256").hexdigest()

    def login_csrf_ok(self, nonce: str | None, given: str | None) -> bool:
        return bool(nonce and given) and hmac.compare_digest(self.login_csrf(str(nonce)), str(given))

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(session.csrf, str(given))

    @staticmethod
    def new_nonce() -> str:
        return _new_id()


def cookie_header(name: str, value: str, *, max_age: int, secure: bool) -> str:
    """A Set-Cookie value: never readable by scripts, never sent by another site's request."""
    parts = [f"{name}={value}", f"Path={PATH}", f"Max-Age={max(0, max_age)}", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
