"""What every EPCIS 2.0 REST route shares, on the ledger (`suyuan serve`) and on the agent
(`suyuan agent`): RFC 7807 problems typed with the standard's exceptions, the ``GS1-*``
headers, content and version negotiation, and the answers to ``OPTIONS``.

XML: a route whose answer the bindings define in ``application/xml`` (an event query's
EPCISQueryDocument) passes its writer to ``media_type``/``document`` and answers EPCIS XML
to a client that prefers it; every other route answers JSON, and 406 to a client that
accepts nothing else (see README, "Query with EPCIS 2.0").
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
    NotWritableAsXml,
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
    **GS1_HEADERS,
    "GS1-EPCIS-Min": EPCIS_VERSION,
    "GS1-EPCIS-Max": EPCIS_VERSION,
    "GS1-CBV-Min": CBV_VERSION,
    "GS1-CBV-Max": CBV_VERSION,
    "GS1-EPC-Format": "Never_Translates",
    "GS1-CBV-XML-Format": "Never_Translates",
    "GS1-Vendor-Version": "suyuan-0.1.0",
}

XML: Final = "application/xml"
# A document to its XML bytes, for the routes whose answers the bindings define in XML.
XmlWriter = Callable[[Mapping[str, Any]], bytes]


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
    (NotWritableAsXml, 406, "NotAcceptableException"),
    (NotFound, 404, "NoSuchNameException"),
    (NotAuthentic, 401, "SecurityException"),
    (NotAuthorised, 403, "SecurityException"),
    (ResourceExists, 409, "ResourceAlreadyExistsException"),
    (UnsupportedMediaType, 415, "UnsupportedMediaTypeException"),
    (RequestTooLarge, 413, "CaptureLimitExceededException"),
    (MalformedInput, 400, "ValidationException"),
]
_TITLES: Final = {
    400: "Bad request",
    401: "Unauthorised request",
    403: "Access to resource forbidden",
    404: "Resource not found",
    406: "Not acceptable",
    409: "Resource already exists",
    413: "Too large",
    415: "Unsupported media type",
    500: "A server-side error occurred",
    501: "Functionality not supported by server",
}


def problem_of(err: LedgerError) -> tuple[int, str]:
    """(HTTP status, EPCIS exception) of a refusal; any other is an ImplementationException."""
    for cls, status, exception in _EXCEPTIONS:
        if isinstance(err, cls):
            return status, exception
    return 500, "ImplementationException"


def problem(err: LedgerError, **headers: str) -> Response:
    """``application/problem+json``: type, title, status and the refusal's sentence."""
    status, exception = problem_of(err)
    body = {
        "type": f"epcisException:{exception}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": f"[{err.code}] {err.message}",
    }
    extra = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=PROBLEM,
        headers={**GS1_HEADERS, **extra, **headers},
    )


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
            raise NotAcceptable(
                f"this server speaks {name} {EPCIS_VERSION} only, outside the "
                f"range GS1-{name}-Min/Max asks for"
            )


def _accepted(request: Request) -> list[tuple[str, float]]:
    """The media ranges of ``Accept`` with their q-values (absent header: anything)."""
    out = []
    for part in request.headers.get("accept", "*/*").split(","):
        kind, _, params = part.strip().partition(";")
        q = 1.0
        m = re.search(r"(?:^|;)\s*q\s*=\s*([0-9.]{1,6})", params)
        if m is not None:
            try:
                q = min(max(float(m[1]), 0.0), 1.0)
            except ValueError:
                q = 1.0
        out.append((kind.strip().lower() or "*/*", q))
    return out


def _quality(offer: str, accepted: list[tuple[str, float]]) -> tuple[float, int]:
    """(q, specificity) the client gives ``offer``: its most specific matching range wins
    (RFC 9110 §12.5.1); no match is q 0."""
    best = (0.0, -1)
    main = offer.split("/", 1)[0]
    for kind, q in accepted:
        if kind == offer:
            spec = 2
        elif kind == f"{main}/*":
            spec = 1
        elif kind == "*/*":
            spec = 0
        else:
            continue
        if spec > best[1]:
            best = (q, spec)
    return best


def media_type(request: Request, *, xml: bool = False) -> str:
    """The type to answer in, by the client's ``Accept`` and q-values: JSON, JSON-LD's own
    type when the client names it, and, on a route whose answer the bindings define in XML
    (``xml``), EPCIS XML when the client prefers it (``text/xml`` if that is the type it
    names); else NotAcceptable. Equal preferences: JSON-LD named, then JSON, then XML."""
    accepted = _accepted(request)
    # application/problem+json accepts our JSON (a client asking for problems only gets JSON).
    offers: list[tuple[str, tuple[float, int]]] = []
    json_q = max(_quality(JSON, accepted), _quality(PROBLEM, accepted))
    ld_q = _quality(JSON_LD, accepted)
    if ld_q[1] == 2:
        offers.append((JSON_LD, ld_q))
    offers.append((JSON, json_q))
    if xml:
        for kind in XML_TYPES:
            q = _quality(kind, accepted)
            offers.append((XML if q[1] < 2 else kind, q))
    best = max(offers, key=lambda o: o[1][0])  # max keeps the first of equals: our order
    if best[1][0] > 0:
        return best[0]
    names = ", ".join(k for k, _ in accepted)[:80]
    served = (
        "application/json, application/ld+json or application/xml"
        if xml
        else "application/json or application/ld+json"
    )
    no_xml = not xml and any(k in XML_TYPES for k, _ in accepted)
    raise NotAcceptable(
        f"this resource is served as {served}, not {names}"
        + ("; GS1's bindings define no XML for it" if no_xml else "")
    )


def document(
    doc: Mapping[str, Any],
    kind: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    xml: XmlWriter | None = None,
) -> Response:
    """``doc`` in the negotiated ``kind``: through ``xml`` when that is an XML type."""
    if kind in XML_TYPES:
        if xml is None:
            raise NotAcceptable("this resource has no XML representation; ask for application/json")
        body = xml(doc)
    else:
        body = orjson.dumps(doc)
    return Response(body, status_code=status, media_type=kind, headers={**GS1_HEADERS, **(headers or {})})


def options(allow: str, **extra: str) -> Response:
    return Response(status_code=204, headers={"Allow": allow, **DISCOVERY_HEADERS, **extra})


def link_next(request: Request, token: str, per_page: int) -> dict[str, str]:
    """The ``Link`` header of the next page: this URL with its token."""
    url = request.url.include_query_params(nextPageToken=token, perPage=per_page)
    return {"Link": f'<{url}>; rel="next"'}
