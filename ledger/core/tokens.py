"""Bearer tokens: a party proves who is reading by signing a short claim with its key.

    token = base64url(JCS({"sub", "key", "exp", "aud"})) + "." + base64url(Ed25519 signature)

base64url without padding (RFC 4648 §5). The signature is over the exact claim bytes
before encoding. ``sub`` is the party id, ``key`` the key id that signed, ``exp`` the
expiry in Unix seconds, ``aud`` the ledger's checkpoint origin (so a token made for one
ledger is refused by another). This module only checks form, expiry, audience and
signature against a public key it is given; whether the key is registered and not revoked
is the registry's question (``check_token``). A token whose ``exp`` is further than
``MAX_TTL`` (30 days, plus ``CLOCK_SKEW``) ahead is refused however it was made.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import Any

from ledger.core import canonical
from ledger.core.errors import LedgerError, NotAuthentic
from ledger.core.keys import PartyKey, verify
from ledger.core.registry import RegistryState

CLAIMS = ("aud", "exp", "key", "sub")
MAX_TTL = 30 * 24 * 3600
CLOCK_SKEW = 300  # seconds a token maker's clock may run ahead of the verifier's


@dataclass(frozen=True)
class Claims:
    sub: str
    key: str
    exp: int
    aud: str


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    if not text or "=" in text:
        raise ValueError("empty or padded")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(
    key: PartyKey, *, signer: str, audience: str, ttl: int = 3600, now: float | None = None
) -> str:
    if not 0 < ttl <= MAX_TTL:
        raise LedgerError(f"a token lives between 1 second and {MAX_TTL} seconds, not {ttl}", code="bad_ttl")
    exp = int(now if now is not None else time.time()) + ttl
    claims = {"sub": signer, "key": key.key_id, "exp": exp, "aud": audience}
    raw = canonical.canonical_bytes(claims)
    return _b64url(raw) + "." + _b64url(key.sign(raw))


def read_token(token: str) -> tuple[Claims, bytes, bytes]:
    """(claims, claim bytes, signature) of a well-formed token; signature not yet checked."""

    def bad(why: str) -> NotAuthentic:
        return NotAuthentic(f"the bearer token is malformed: {why}", code="token_malformed")

    parts = token.split(".")
    if len(parts) != 2:
        raise bad("it is two base64url parts joined by one dot")
    try:
        raw, sig = _unb64url(parts[0]), _unb64url(parts[1])
    except (ValueError, binascii.Error):
        raise bad("a part is not unpadded base64url") from None
    if len(sig) != 64:
        raise bad("the signature is not 64 bytes")
    try:
        doc: Any = canonical.parse_json(raw)
    except LedgerError:
        raise bad("the claims are not JSON") from None
    if not isinstance(doc, dict) or sorted(doc) != list(CLAIMS):
        raise bad("the claims are exactly sub, key, exp and aud")
    if canonical.canonical_bytes(doc) != raw:
        raise bad("the claims are not in canonical (JCS) form")
    if not (
        isinstance(doc["sub"], str)
        and isinstance(doc["key"], str)
        and isinstance(doc["aud"], str)
        and type(doc["exp"]) is int
    ):
        raise bad("sub, key and aud are strings and exp is an integer")
    return Claims(doc["sub"], doc["key"], doc["exp"], doc["aud"]), raw, sig


def check_token(
    token: str, reg: RegistryState, *, audience: str, seq: int, now: float | None = None
) -> Claims:
    """The token's claims if it is well formed, unexpired, for ``audience``, and signed by
    a key registered to ``sub`` that is valid at ``seq`` (normally the ledger's size, so a
    revoked key's tokens stop working at once). Raises NotAuthentic with the reason."""
    claims, raw, sig = read_token(token)
    t = int(now if now is not None else time.time())
    if claims.exp <= t:
        raise NotAuthentic(
            f"the bearer token expired {t - claims.exp} seconds ago; make a new one", code="token_expired"
        )
    # A token signed to live for years (or forever) is a stolen key's gift: whoever made
    # it, it lives at most MAX_TTL from now.
    if claims.exp > t + MAX_TTL + CLOCK_SKEW:
        raise NotAuthentic(
            f"the bearer token would live {claims.exp - t} more seconds, longer "
            f"than the {MAX_TTL} a token may; make a new one with `suyuan token`",
            code="token_lifetime",
        )
    if claims.aud != audience:
        raise NotAuthentic(
            f"the bearer token is for {claims.aud!r}, not for this ledger ({audience!r})",
            code="token_audience",
        )
    rec = reg.keys.get(claims.key)
    if rec is None or rec.party != claims.sub:
        raise NotAuthentic(
            f"key {claims.key} is not a registered key of {claims.sub}", code="token_unknown_key"
        )
    if rec.valid_until is not None and seq > rec.valid_until:
        raise NotAuthentic(
            f"key {claims.key} of {claims.sub} was {rec.ended_by or 'revoked'} at seq "
            f"{rec.valid_until}; its tokens no longer work",
            code="token_key_revoked",
        )
    verify(rec.public_key, raw, sig, who=f"{claims.sub} (key {claims.key})")
    return claims
