"""GS1 Digital Link resolver: a product's URL answers with its journey, recall status or
links, as JSON (the consumer page comes with later work).

Routes follow the Digital Link path grammar: ``/01/{gtin}[/10/{lot}][/21/{serial}]`` and
``/00/{sscc}``; ``?linkType=`` picks the answer. Nothing here decides anything: it maps
URLs onto ``ledger.trace`` and errors onto status codes.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ledger import trace
from ledger.errors import IdentifierError, LedgerError
from ledger.ids import parse_digital_link
from ledger.store.db import Store

LINK_TYPES = ("gs1:pip", "gs1:traceability", "gs1:recallStatus", "linkset")


def _error(status: int, err: LedgerError) -> JSONResponse:
    return JSONResponse({"error": err.as_dict()}, status_code=status)


def _links(base: str, path: str) -> list[dict[str, str]]:
    return [{"linkType": t, "href": f"{base}{path}?linkType={t}"} for t in LINK_TYPES
            if t != "linkset"]


def resolve(request: Request, store: Store, base_url: str) -> Response:
    try:
        link = parse_digital_link(request.url.path)
    except IdentifierError as e:
        return _error(400, e)
    code = link.canonical
    link_type = request.query_params.get("linkType", "gs1:traceability")
    if link_type not in LINK_TYPES:
        return _error(400, LedgerError(
            f"linkType {link_type!r} is not one of {', '.join(LINK_TYPES)}", code="bad_link_type"))
    try:
        if link_type == "linkset":
            body: dict[str, Any] = {"anchor": code, "links": _links(base_url, link.path)}
        elif link_type == "gs1:recallStatus":
            body = _recall_status(store, code)
        else:
            body = trace.journey(store, code)
            if not body["journey"]:
                return _error(404, LedgerError(
                    f"the ledger holds nothing about {code}; check the code on the label",
                    code="not_found"))
    except IdentifierError as e:
        return _error(400, e)
    except LedgerError as e:
        return _error(422, e)
    return JSONResponse(body)


def _recall_status(store: Store, code: str) -> dict[str, Any]:
    steps = trace.journey(store, code)["journey"]
    recalls = [s for s in steps if s["stage"] == "recall"]
    return {"code": code, "recalled": bool(recalls),
            "recalls": [{"seq": s["seq"], "eventTime": s["eventTime"], "signer": s["signer"],
                         "via": s["via"]} for s in recalls]}
