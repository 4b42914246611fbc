"""Who scanned an item, as far as the network can tell: the client's address and region,
for the scans that feed the counterfeit signal (ledger/queries/scans.py).

Headers are whatever a client chooses to send, so ``X-Region`` and ``X-Forwarded-For``
are believed only from a peer in the configured trusted proxies (``SUYUAN_TRUSTED_PROXIES``,
``suyuan serve --trusted-proxy``; none by default). From anyone else the socket's peer
address decides: its network is the region, and the address itself the visitor. The
visitor is kept only as a keyed pseudonym (HMAC-SHA256 under a secret in
``SUYUAN_HOME/visitor.key``), which ledger/queries/scans.py hashes again with the code.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from ledger.core.errors import ConfigError
from ledger.queries import scans

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

SECRET_FILE = "visitor.key"
SECRET_BYTES = 32


def parse_proxies(
    cidrs: str | Iterable[str], *, where: str = "SUYUAN_TRUSTED_PROXIES"
) -> tuple[Network, ...]:
    """Networks from comma-separated (or listed) CIDRs such as ``10.0.0.0/8``; a bare
    address is its own /32 or /128. Refuses anything else, naming it."""
    parts = cidrs.split(",") if isinstance(cidrs, str) else list(cidrs)
    out: list[Network] = []
    for part in parts:
        text = part.strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError(
                f"{where}: {text!r} is not an address or CIDR network such as 10.0.0.0/8 or 2001:db8::/32"
            ) from None
    return tuple(out)


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(ip: Address, proxies: tuple[Network, ...]) -> bool:
    return any(ip in net for net in proxies)


@dataclass(frozen=True)
class Origin:
    """Where a request came from: the client's address (None when unknown) and the region
    a trusted proxy named for it (None when none did)."""

    address: str | None
    region: str | None


def origin_of(request: Request, proxies: tuple[Network, ...]) -> Origin:
    """The request's origin. Headers count only when the socket's peer is a trusted proxy:
    then the client is the first hop of ``X-Forwarded-For``, read from the right, that is
    not a trusted proxy (hops further left are the client's own claims), and the region
    is the last ``X-Region`` (the one the proxy set)."""
    peer = request.client.host if request.client else None
    if not proxies or peer is None:
        return Origin(peer, None)
    ip = _address(peer)
    if ip is None or not _trusted(ip, proxies):
        return Origin(peer, None)
    address = str(ip)
    hops = ",".join(request.headers.getlist("x-forwarded-for")).split(",")
    for hop in reversed(hops):
        if not hop.strip():
            continue
        got = _address(hop)
        if got is None:
            break  # not an address: nothing left of it can be trusted either
        address = str(got)
        if not _trusted(got, proxies):
            break
    regions = request.headers.getlist("x-region")
    return Origin(address, regions[-1] if regions and regions[-1].strip() else None)


def visitor_secret(home: Path | None) -> bytes:
    """The key of visitors' pseudonyms: ``home/visitor.key``, made on first use (every
    worker and restart then names a client alike). Without a home directory, a key for
    this process only. Refuses a damaged file."""
    if home is None or not home.is_dir():
        return secrets.token_bytes(SECRET_BYTES)
    path = home / SECRET_FILE
    if not path.exists():
        # Written aside and linked into place: workers starting together all end up
        # with the one key that won, never with a half-written file.
        tmp = home / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            raise ConfigError(
                f"cannot write {path} ({e.strerror}); make {home} writable once, "
                f"or put 32 random bytes there (head -c 32 /dev/urandom > {path})"
            ) from None
        try:
            os.write(fd, secrets.token_bytes(SECRET_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink()
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(
            f"cannot read {path} ({e.strerror}); it holds the key of visitors' pseudonyms: 32 random bytes"
        ) from None
    if len(raw) != SECRET_BYTES:
        raise ConfigError(
            f"{path} is damaged ({len(raw)} bytes, not {SECRET_BYTES}); delete it "
            "and a new one is made at start (clients already counted may count "
            "once more)"
        )
    return raw


def _client_key(address: str) -> str:
    # An IPv6 host picks new addresses within its /64 at will: the /64 is the client.
    ip = _address(address)
    if ip is not None and ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


@dataclass(frozen=True)
class Visitors:
    """Turns requests into the scans ledger/queries/scans.py records."""

    proxies: tuple[Network, ...]
    secret: bytes

    def visitor(self, address: str | None) -> str | None:
        if address is None:
            return None
        return hmac.new(self.secret, _client_key(address).encode(), hashlib.sha256).hexdigest()

    def scan_of(self, request: Request) -> scans.Scan:
        origin = origin_of(request, self.proxies)
        return scans.Scan(
            region=scans.region_of(origin.region, origin.address),
            client=scans.client_class(request.headers.get("user-agent")),
            visitor=self.visitor(origin.address),
        )
