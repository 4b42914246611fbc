"""Every refusal the ledger makes, as one exception tree.

Each error carries a machine-readable ``code`` and a message that is one sentence a user
can act on. The CLI prints ``diagnostics()`` and exits non-zero; the API returns
``{"code", "message"}``.

LedgerError                 root; never raised itself
├── MalformedInput          bytes or JSON that are not a well-formed statement/envelope
│   └── IdentifierError     a party or product identifier with a bad form or check digit
├── NotAuthentic            a signature that does not verify, a key that is unknown,
│                           not yet valid, revoked, or belongs to someone else
├── NotAuthorised           an authentic statement its signer may not make
├── ProofError              an inclusion or consistency proof that does not verify
├── NoteError               a signed note / checkpoint that does not parse or verify
├── BatchRejected           a batch refused as a whole; ``errors`` holds (index, error)
├── NotFound                a seq, size, key or file that does not exist
├── ConfigError             the ledger or its home directory is not set up as needed
└── DamagedStore            a row of the log the ledger did not write as it reads (a column
                            of the wrong type): the database was changed outside the ledger
"""

from __future__ import annotations

from collections.abc import Sequence


class LedgerError(Exception):
    """Root of every error the ledger raises on purpose."""

    code: str = "ledger_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def diagnostics(self) -> str:
        """The text a terminal user sees: the sentence and its code."""
        return f"error [{self.code}]: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class MalformedInput(LedgerError):
    code = "malformed"


class IdentifierError(MalformedInput):
    code = "bad_identifier"


class NotAuthentic(LedgerError):
    code = "not_authentic"


class NotAuthorised(LedgerError):
    code = "not_authorised"


class ProofError(LedgerError):
    code = "bad_proof"


class NoteError(LedgerError):
    code = "bad_note"


class NotFound(LedgerError):
    code = "not_found"


class ConfigError(LedgerError):
    code = "config"


class StorageFailure(LedgerError):
    """The database failed under the ledger (a full disk, a read-only file, a server that is
    gone): not the request's fault, and nothing of it landed (``ledger.store.failures``)."""

    code = "storage"


class DamagedStore(LedgerError):
    """A log row that cannot be what the ledger wrote; ``seq`` or ``checkpoint`` says where
    and ``detail`` what, so the audit can report it at its place and go on."""

    code = "damaged"

    def __init__(self, detail: str, *, seq: int | None = None, checkpoint: int | None = None) -> None:
        where = (
            f"seq {seq}: "
            if seq is not None
            else f"checkpoint {checkpoint}: "
            if checkpoint is not None
            else ""
        )
        super().__init__(where + detail)
        self.detail, self.seq, self.checkpoint = detail, seq, checkpoint


class BatchRejected(LedgerError):
    """A batch in which at least one envelope was refused; nothing of it was appended."""

    code = "batch_rejected"

    def __init__(self, errors: Sequence[tuple[int, LedgerError]]) -> None:
        self.errors = list(errors)
        first_index, first = self.errors[0]
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(f"batch refused, nothing appended: envelope {first_index}: {first.message}{more}")

    def diagnostics(self) -> str:
        lines = [f"error [{self.code}]: {len(self.errors)} envelope(s) refused, nothing appended"]
        lines += [f"  envelope {i}: [{e.code}] {e.message}" for i, e in self.errors]
        return "\n".join(lines)
