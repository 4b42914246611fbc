"""Private data: salted commitments in statements, blobs kept apart, shown to the entitled.

A statement's ``private`` field is ``sha256:`` + hex SHA-256 of JCS({"salt", "data"}).
The blob lives outside the chain, so erasing it (crypto-shredding) changes no hash.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ledger.core import canonical
from ledger.core.errors import MalformedInput, NotAuthorised

SALT_BYTES = 16


@dataclass(frozen=True)
class Viewer:
    """Who is reading: anyone, one party (signed-token holder), or a regulator."""

    kind: Literal["public", "party", "regulator"] = "public"
    party: str | None = None

    @classmethod
    def parse(cls, text: str) -> Viewer:
        if text == "public":
            return cls()
        if text == "regulator":
            return cls("regulator")
        if text.startswith("party:"):
            return cls("party", text[len("party:") :])
        raise MalformedInput("viewer is public, regulator or party:<party id>")


PUBLIC = Viewer()


def make_blob(data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(commitment, blob) for ``data``: a fresh 16-byte salt hides guessable values."""
    blob = {"salt": base64.b64encode(os.urandom(SALT_BYTES)).decode(), "data": dict(data)}
    return commitment_of(blob), blob


def commitment_of(blob: Mapping[str, Any]) -> str:
    if not isinstance(blob, Mapping) or set(blob) != {"salt", "data"}:
        raise MalformedInput("a private blob is exactly {salt, data}")
    if not isinstance(blob["data"], Mapping):
        raise MalformedInput("private data must be a JSON object")
    return "sha256:" + hashlib.sha256(canonical.canonical_bytes(dict(blob))).hexdigest()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def entitled(viewer: Viewer, statement: Mapping[str, Any], cosigners: list[str]) -> bool:
    """Regulators; the signer; a cosigner; a party the statement's body names."""
    if viewer.kind == "regulator":
        return True
    if viewer.kind != "party" or not viewer.party:
        return False
    if viewer.party == statement.get("signer") or viewer.party in cosigners:
        return True
    return viewer.party in set(_strings(statement.get("body")))


def check_view(viewer: Viewer, statement: Mapping[str, Any], cosigners: list[str]) -> None:
    if not entitled(viewer, statement, cosigners):
        raise NotAuthorised(
            "private data is shown only to its signer, the parties its statement names, and regulators",
            code="not_entitled",
        )


def unwrap_envelopes(items: Iterable[Any]) -> tuple[list[Any], dict[str, Any]]:
    """(envelopes, commitment -> blob): an item may be an envelope, or an envelope with its
    private blob beside it as ``{"envelope", "private"}`` (what `suyuan sign --private`
    writes); the blob never travels inside the signed statement."""
    envs: list[Any] = []
    private: dict[str, Any] = {}
    for item in items:
        if isinstance(item, dict) and item.keys() == {"envelope", "private"}:
            env = item["envelope"]
            # Anything may arrive here: prepare refuses a malformed envelope, this must not crash.
            st = env.get("statement") if isinstance(env, dict) else None
            commitment = st.get("private") if isinstance(st, dict) else None
            if isinstance(commitment, str):
                private[commitment] = item["private"]
            envs.append(env)
        else:
            envs.append(item)
    return envs, private
