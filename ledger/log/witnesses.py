"""The ledger's side of witnessing: ask each configured witness to cosign the latest
checkpoint (C2SP tlog-witness), keep the cosignatures, and say whether a k-of-n quorum
holds. The HTTP call is injected, so the rules are tested without sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.core.errors import ConfigError, LedgerError, NoteError
from ledger.core.statements import ledger_time
from ledger.log.cosigner import CosignatureVerifier, request_body
from ledger.log.sequencer import Ledger

Post = Callable[[str, str, float], tuple[int, str]]
"""POST (url, body, timeout) -> (status, text); raises OSError-like errors when down."""


@dataclass(frozen=True)
class WitnessConfig:
    url: str  # the submission prefix; add-checkpoint is appended
    key: str  # the witness's cosignature verifier key (type 0x04)

    @property
    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier.from_vkey(self.key)


@dataclass(frozen=True)
class Witnessing:
    witnesses: tuple[WitnessConfig, ...]
    quorum: int
    timeout: float = 3.0
    retries: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.quorum <= len(self.witnesses):
            raise ConfigError(
                f"quorum {self.quorum} must be between 0 and the {len(self.witnesses)} witnesses configured"
            )

    @classmethod
    def from_config(cls, doc: Mapping[str, Any]) -> Witnessing:
        ws = tuple(WitnessConfig(w["url"], w["key"]) for w in doc.get("witnesses", []))
        for w in ws:
            w.verifier  # noqa: B018 - refuse a bad key when loading, not at first use
        return cls(ws, int(doc.get("quorum", len(ws))))


@dataclass
class GatherResult:
    size: int
    quorum: int
    cosigned: list[str] = field(default_factory=list)  # witness names
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def witnessed(self) -> bool:
        return len(self.cosigned) >= self.quorum

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "cosigned": len(self.cosigned),
            "of": len(self.cosigned) + len(self.errors),
            "quorum": self.quorum,
            "witnessed": self.witnessed,
            "witnesses": self.cosigned,
            "errors": self.errors,
        }


def gather(ledger: Ledger, cfg: Witnessing, post: Post) -> GatherResult:
    """Ask every witness to cosign the latest checkpoint; store each valid cosignature."""
    note = ledger.latest_checkpoint()
    size = ledger.size()
    result = GatherResult(size, cfg.quorum)
    for w in cfg.witnesses:
        verifier = w.verifier
        try:
            line = _ask(ledger, w, verifier, note, size, cfg, post)
        except (LedgerError, OSError) as e:
            result.errors[verifier.name] = e.message if isinstance(e, LedgerError) else str(e)
            continue
        with ledger.store.writing() as conn:
            ledger.store.save_cosignature(
                conn, size=size, witness=verifier.name, line=line, received=ledger_time()
            )
        result.cosigned.append(verifier.name)
    return result


def _ask(
    ledger: Ledger,
    w: WitnessConfig,
    verifier: CosignatureVerifier,
    note: str,
    size: int,
    cfg: Witnessing,
    post: Post,
) -> str:
    with ledger.store.reading() as conn:
        old = ledger.store.witness_size(conn, verifier.name)
    last = ""
    for attempt in range(cfg.retries + 1):
        proof = list(ledger.consistency_proof(old, size).hashes) if old else []
        try:
            status, text = post(
                w.url.rstrip("/") + "/add-checkpoint", request_body(old, proof, note), cfg.timeout
            )
        except OSError as e:
            last = f"unreachable: {e}"
            time.sleep(min(0.2 * 2**attempt, 2.0))
            continue
        if status == 200:
            for line in text.splitlines(keepends=True):
                try:
                    verifier.verify(note + line)
                except NoteError:
                    continue
                return line
            raise NoteError(f"{verifier.name} answered without a valid cosignature")
        if status == 409 and text.strip().isdigit() and int(text) != old:
            old = int(text)  # the witness saw another size: prove from there
            if old > size:
                raise NoteError(
                    f"{verifier.name} has seen size {old}, beyond ours ({size}): "
                    "it saw a longer history than this ledger holds"
                )
            continue
        last = f"HTTP {status}: {text.strip()[:200]}"
        if status in (403, 404, 422):
            break  # retrying cannot change the witness's answer
    raise LedgerError(f"{verifier.name} did not cosign size {size} ({last})", code="not_cosigned")


def cosigned_note(ledger: Ledger, size: int | None = None) -> str:
    """The checkpoint note with every stored cosignature line appended."""
    n = ledger.size() if size is None else size
    note = ledger.checkpoint_note(n)
    with ledger.store.reading() as conn:
        lines = ledger.store.cosignature_lines(conn, n)
    return note + "".join(lines)


def http_post(url: str, body: str, timeout: float) -> tuple[int, str]:
    """The real POST, over httpx (loopback or a configured witness URL)."""
    import httpx

    try:
        r = httpx.post(url, content=body.encode(), timeout=timeout)
    except httpx.HTTPError as e:
        raise OSError(str(e)) from None
    return r.status_code, r.text


def count_cosignatures(note: str, witnesses: Sequence[WitnessConfig]) -> list[str]:
    """Names of the configured witnesses whose valid cosignature the note carries."""
    good = []
    for w in witnesses:
        try:
            w.verifier.verify(note)
        except NoteError:
            continue
        good.append(w.verifier.name)
    return good


class Gatherer:
    """Gathers cosignatures after appends that did not gather them themselves (GraphQL
    ``submit``), on a thread of its own so that no submitter waits for a witness: one
    round at a time, and appends during a round make exactly one more round after it."""

    def __init__(self, ledger: Ledger, cfg: Witnessing, post: Post | None = None) -> None:
        self.ledger, self.cfg = ledger, cfg
        self.post: Post = post or http_post
        self.last: GatherResult | None = None  # the latest round's outcome
        self._lock = threading.Lock()
        self._running = False
        self._again = False
        self._idle = threading.Event()
        self._idle.set()

    def poke(self) -> None:
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
            self._idle.clear()
        threading.Thread(target=self._rounds, name="suyuan-witness-gather", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Until no round is running or due (tests, shutdown); False on timeout."""
        return self._idle.wait(timeout)

    def _rounds(self) -> None:
        while True:
            try:
                self.last = gather(self.ledger, self.cfg, self.post)
            except Exception as e:  # noqa: BLE001 - a round must never kill the thread
                self.last = GatherResult(0, self.cfg.quorum, errors={"gather": repr(e)})
            with self._lock:
                if not self._again:
                    self._running = False
                    self._idle.set()
                    return
                self._again = False
