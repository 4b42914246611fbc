"""One mapping from the ledger's refusals to HTTP statuses, used by every route.

The status follows the error's class (the nearest one in this table along its MRO), so a
new subclass answers like its parent until it is given a line of its own:

    MalformedInput (IdentifierError …)  400   the request itself is wrong
    ProofError                          400   no proof can be made from those sizes
    RequestTooLarge                     413   the body is over the limit (not read)
    UnsupportedMediaType                415   the body is not of a type the route reads
    NotAuthentic                        401   who is asking could not be established
    NotAuthorised                       403   they may not do this
    NotFound                            404   no such seq, size, code or key
    BatchRejected, NoteError, …         422   understood, and refused
    ConfigError                         503   the server is not set up for this
    StorageFailure                      503   its database failed (full, read-only, gone)

The ledger has no class for a conflict with stored state today (its refusals of that
kind are NotAuthorised): one added to ledger.core.errors gets its 409 here.
"""

from __future__ import annotations

import logging
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ledger.core.errors import (
    ConfigError,
    LedgerError,
    MalformedInput,
    NotAuthentic,
    NotAuthorised,
    NotFound,
    ProofError,
    StorageFailure,
)
from ledger.store.failures import storage_error

log = logging.getLogger("suyuan.api")


class RequestTooLarge(MalformedInput):
    code = "too_large"


class UnsupportedMediaType(MalformedInput):
    code = "unsupported_media_type"


STATUS: Final[dict[type[LedgerError], int]] = {
    MalformedInput: 400,
    ProofError: 400,
    RequestTooLarge: 413,
    UnsupportedMediaType: 415,
    NotAuthentic: 401,
    NotAuthorised: 403,
    NotFound: 404,
    ConfigError: 503,
    StorageFailure: 503,
    LedgerError: 422,
}


def status_of(err: LedgerError) -> int:
    for cls in type(err).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 422


def error_response(err: LedgerError) -> JSONResponse:
    """``{"error": {"code", "message"}}`` with the error's status."""
    status = status_of(err)
    # RFC 9110 §11.6.1: a 401 names the scheme that would let the client in.
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": err.as_dict()}, status_code=status, headers=headers)


async def ledger_error(request: Request, exc: Exception) -> Response:
    """Starlette's handler for any LedgerError a route raises."""
    assert isinstance(exc, LedgerError)
    return error_response(exc)


STORAGE_WHERE: Final = "the ledger's database"


async def database_error(request: Request, exc: Exception) -> Response:
    """Starlette's handler for a database driver's error a route let through: the
    ``storage`` refusal (503) when the database failed; anything else is a bug, answered
    as one (500, logged by the server) without its details."""
    problem = storage_error(exc, where=STORAGE_WHERE)
    if problem is None:
        log.error("unexpected database error on %s", request.url.path, exc_info=exc)
        return JSONResponse(
            {"error": {"code": "internal", "message": "the server failed; it is logged"}}, status_code=500
        )
    return error_response(problem)
