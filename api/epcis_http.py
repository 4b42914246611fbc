"""What every EPCIS 2.0 REST route shares, on the ledger (`suyuan serve`) and on the agent
(`suyuan agent`): RFC 7807 problems typed with the standard's exceptions, the ``GS1-*``
headers, content and version negotiation, and the answers to ``OPTIONS``.

XML: a route answers JSON(-LD) only, and 406 to a client that accepts nothing but XML,
until an XML serialiser is set with ``set_xml_writer`` (one call, for the EPCIS XML module
when it lands; see README, "Query with EPCIS 2.0").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response

from api.errors import RequestTooLarge, UnsupportedMediaType
from ledger.core.errors import LedgerError, MalformedInput, NotAuthentic, NotAuthorised, NotFound
from ledger.queries.epcis_query import (
    QueryParameterException,
    QueryTooComplex,
    QueryTooLarge,
    UnsupportedQuery,
)

EPCIS_VERSION: Final = "2.0.0"
CBV_VERSION: Final = "2.0.0"
JSON: Final = "application/json"
JSON_LD: Final = "application/ld+json"
PROBLEM: Final = "application/problem+json"
XML_TYPES: Final = ("application/xml", "text/xml")

GS1_HEADERS: Final = {"GS1-EPCIS-Version": EPCIS_VERSION, "GS1-CBV-Version": CBV_VERSION}
# Returned events are the signed bodies: identifiers are never rewritten.
DISCOVERY_HEADERS: Final = {
    **GS1_HEADERS, "GS1-EPCIS-Min": EPCIS_VERSION, "GS1-EPCIS-Max": EPCIS_VERSION,
    "GS1-CBV-Min": CBV_VERSION, "GS1-CBV-Max": CBV_VERSION, "GS1-EPC-Format": "Never_Translates",
    "GS1-CBV-XML-Format": "Never_Translates", "GS1-Vendor-Version": "suyuan-0.1.0",
}

XmlWriter = Callable[[Mapping[str, Any]], bytes]
_xml_writer: list[XmlWriter] = []


def set_xml_writer(writer: XmlWriter | None) -> None:
    """Serve ``application/xml`` through ``writer`` (a document to EPCIS 2.0 XML bytes)."""
    _xml_writer[:] = [] if writer is None else [writer]


class NotAcceptable(LedgerError):
    """The client accepts no representation or version this server has."""

    code = "not_acceptable"


class ResourceExists(LedgerError):
    code = "exists"


class NotImplementedHere(UnsupportedQuery):
    """An operation of the bindings this server does not offer."""


_EXCEPTIONS: Final[list[tuple[type[LedgerError], int, str]]] = [
    (QueryParameterException, 400, "QueryParameterException"),
    (UnsupportedQuery, 501, "ImplementationException"),
    (QueryTooLarge, 413, "QueryTooLargeException"),
    (QueryTooComplex, 413, "QueryTooComplexException"),
    (NotAcceptable, 406, "NotAcceptableException"),
    (NotFound, 404, "NoSuchNameException"),
    (NotAuthentic, 401, "SecurityException"),
    (NotAuthorised, 403, "SecurityException"),
    (ResourceExists, 409, "ResourceAlreadyExistsException"),
    (UnsupportedMediaType, 415, "UnsupportedMediaTypeException"),
    (RequestTooLarge, 413, "CaptureLimitExceededException"),
    (MalformedInput, 400, "ValidationException"),
]
_TITLES: Final = {400: "Bad request", 401: "Unauthorised request", 403: "Access to resource forbidden",
                  404: "Resource not found", 406: "Not acceptable", 409: "Resource already exists",
                  413: "Too large", 415: "Unsupported media type", 500: "A server-side error occurred",
                  501: "Functionality not supported by server"}


def problem_of(err: LedgerError) -> tuple[int, str]:
    """(HTTP status, EPCIS exception) of a refusal; any other is an ImplementationException."""
    for cls, status, exception in _EXCEPTIONS:
        if isinstance(err, cls):
            return status, exception
    return 500, "ImplementationException"


def problem(err: LedgerError, **headers: str) -> Response:
    """``application/problem+json``: type, title, status and the refusal's sentence."""
    status, exception = problem_of(err)
    body = {"type": f"epcisException:{exception}", "title": _TITLES.get(status, "Error"),
            "status": status, "detail": f"[{err.code}] {err.message}"}
    extra = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM,
                    headers={**GS1_HEADERS, **extra, **headers})


_VERSION = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})*")


def _version(text: str) -> tuple[int, ...] | None:
    text = text.strip()
    return tuple(int(p) for p in text.split(".")) if _VERSION.fullmatch(text) else None


def _pad(v: tuple[int, ...]) -> tuple[int, ...]:
    return v + (0,) * (3 - len(v)) if len(v) < 3 else v


def check_versions(request: Request) -> None:
    """406 when the client's ``GS1-EPCIS-Min/Max`` or ``GS1-CBV-Min/Max`` exclude 2.0.0."""
    ours = _pad((2, 0, 0))
    for name in ("EPCIS", "CBV"):
        low = _version(request.headers.get(f"GS1-{name}-Min", ""))
        high = _version(request.headers.get(f"GS1-{name}-Max", ""))
        if (low is not None and _pad(low) > ours) or (high is not None and _pad(high) < ours):
            raise NotAcceptable(f"this server speaks {name} {EPCIS_VERSION} only, outside the "
                                f"range GS1-{name}-Min/Max asks for")


def _accepted(request: Request) -> list[str]:
    out = []
    for part in request.headers.get("accept", "*/*").split(","):
        kind, _, params = part.strip().partition(";")
        q = re.search(r"q\s*=\s*([0-9.]+)", params)
        if q is not None and q[1].strip("0.") == "":
            continue  # q=0: explicitly not acceptable
        out.append(kind.strip().lower())
    return out


def media_type(request: Request) -> str:
    """The type to answer in: JSON-LD's own type if asked for, else JSON; XML once a
    writer is set; else NotAcceptable."""
    accepted = _accepted(request)
    if JSON_LD in accepted:
        return JSON_LD
    if any(a in (JSON, "application/*", "*/*", "", PROBLEM) for a in accepted):
        return JSON
    if _xml_writer and any(a in XML_TYPES for a in accepted):
        return "application/xml"
    wanted = ", ".join(accepted)[:80]
    raise NotAcceptable(f"this server answers application/json or application/ld+json, not "
                        f"{wanted}" + ("; EPCIS XML is not served yet" if any(
                            a in XML_TYPES for a in accepted) else ""))


def document(doc: Mapping[str, Any], kind: str, *, status: int = 200,
             headers: Mapping[str, str] | None = None) -> Response:
    body = _xml_writer[0](doc) if kind == "application/xml" and _xml_writer else orjson.dumps(doc)
    return Response(body, status_code=status, media_type=kind,
                    headers={**GS1_HEADERS, **(headers or {})})


def options(allow: str, **extra: str) -> Response:
    return Response(status_code=204, headers={"Allow": allow, **DISCOVERY_HEADERS, **extra})


def link_next(request: Request, token: str, per_page: int) -> dict[str, str]:
    """The ``Link`` header of the next page: this URL with its token."""
    url = request.url.include_query_params(nextPageToken=token, perPage=per_page)
    return {"Link": f'<{url}>; rel="next"'}
