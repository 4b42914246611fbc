"""GS1 Digital Link resolver: a product's URL answers with the consumer page, its journey,
an EPCIS document, its recall status or its links.

Routes follow the Digital Link path grammar: ``/01/{gtin}[/10/{lot}][/21/{serial}]`` and
``/00/{sscc}``. ``?linkType=`` picks the answer; without one, content negotiation does:
a browser (``Accept: text/html``) gets the consumer page, any other client the page's
facts as JSON. Errors come back the same way (an HTML page or ``{"error": …}``). A
resolve of a serialised item the ledger knows is recorded as a scan. Nothing here decides
anything: it maps URLs onto ``ledger.queries.page``, ``ledger.queries.trace``, ``ledger.epcis`` and
``ledger.queries.scans``, and errors onto status codes.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from api import pages
from api.errors import status_of
from api.visitors import Visitors
from ledger.core.errors import IdentifierError, LedgerError, MalformedInput, NotFound
from ledger.core.ids import DigitalLink, parse_digital_link
from ledger.log.sequencer import Ledger
from ledger.log.witnesses import Witnessing
from ledger.queries import documents as epcis
from ledger.queries import page as page_facts
from ledger.queries import scans, trace

GS1_VOC = "https://gs1.org/voc/"
LINK_TYPES = ("gs1:pip", "gs1:traceability", "gs1:epcis", "gs1:recallStatus", "linkset")
# What each link type serves: (media type, title zh, title en).
_TARGETS = {
    "gs1:pip": ("text/html", "商品追溯页面", "Product traceability page"),
    "gs1:traceability": ("application/json", "流转记录（JSON）", "Journey (JSON)"),
    "gs1:epcis": ("application/ld+json", "EPCIS 2.0 事件文档", "EPCIS 2.0 document of the journey"),
    "gs1:recallStatus": ("application/json", "召回状态", "Recall status"),
}
HTML_TYPES = ("text/html", "application/xhtml+xml")
JSON_TYPES = ("application/json", "application/ld+json", "application/linkset+json")


def _accept(request: Request) -> list[tuple[str, float]]:
    out = []
    for part in request.headers.get("accept", "*/*").split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if media:
            out.append((media.strip().lower(), q))
    return out


def _quality(accept: list[tuple[str, float]], types: tuple[str, ...]) -> float:
    exact = [q for m, q in accept if m in types]
    if exact:
        return max(exact)
    prefix = {t.split("/")[0] + "/*" for t in types}
    partial = [q for m, q in accept if m in prefix]
    if partial:
        return max(partial)
    return max((q - 0.001 for m, q in accept if m == "*/*"), default=0.0)


def wants_html(request: Request) -> bool:
    """True when the client prefers HTML to JSON (a browser); ``*/*`` alone means JSON."""
    accept = _accept(request)
    html = max((q for m, q in accept if m in HTML_TYPES), default=0.0)
    return html > 0 and html >= _quality(accept, JSON_TYPES)


def _lang(request: Request) -> str:
    return pages.choose_lang(request.query_params.get("lang"), request.headers.get("accept-language"))


_TITLES = {400: "bad_title", 404: "not_found_title"}


def _error(request: Request, err: LedgerError, *, html_message: str | None = None) -> Response:
    """The refusal as a page for a browser, else as JSON; its status by api/errors.py."""
    status = status_of(err)
    title_key = _TITLES.get(status, "failed_title")
    if wants_html(request):
        lang = _lang(request)
        body = pages.render_error(
            lang=lang,
            status=status,
            title_key=title_key,
            message=html_message or err.message,
            path=request.url.path,
        )
        return HTMLResponse(body, status_code=status)
    return JSONResponse({"error": err.as_dict()}, status_code=status)


def linkset(base_url: str, path: str) -> dict[str, Any]:
    """RFC 9264 linkset, as GS1-conformant resolvers serve it: one context object whose
    keys are link relation types (GS1 Web Vocabulary URIs), each with its targets."""
    anchor = base_url + path
    ctx: dict[str, Any] = {"anchor": anchor}
    for lt, (media, zh, en) in _TARGETS.items():
        href = f"{anchor}?linkType={lt}"
        if media == "text/html":
            ctx[GS1_VOC + lt.removeprefix("gs1:")] = [
                {"href": href, "title": zh, "type": media, "hreflang": ["zh"]},
                {"href": href + "&lang=en", "title": en, "type": media, "hreflang": ["en"]},
            ]
        else:
            ctx[GS1_VOC + lt.removeprefix("gs1:")] = [{"href": href, "title": en, "type": media}]
    media, zh, en = _TARGETS["gs1:pip"]
    ctx[GS1_VOC + "defaultLink"] = [
        {"href": f"{anchor}?linkType=gs1:pip", "title": f"{zh} / {en}", "type": media}
    ]
    return {"linkset": [ctx]}


def resolver_description(base_url: str) -> dict[str, Any]:
    """The GS1-conformant resolver description file served at /.well-known/gs1resolver."""
    return {
        "name": "Suyuan traceability ledger resolver",
        "resolverRoot": base_url + "/",
        "supportedPrimaryKeys": ["01", "00"],
        "supportedLinkType": [{"namespace": GS1_VOC, "prefix": "gs1:"}],
        "linkTypeDefaultCanBeLinkset": False,
    }


CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Accept, Accept-Language",
    "Access-Control-Expose-Headers": "Link, Content-Type",
}


def parsed_path(path: str) -> DigitalLink | None:
    """The Digital Link ``path`` names, or None where it does not parse (``resolve`` then
    answers why)."""
    try:
        return parse_digital_link(path)
    except IdentifierError:
        return None


def resolve(
    request: Request,
    ledger: Ledger,
    base_url: str,
    *,
    witnessing: Witnessing | None,
    cache: page_facts.VerificationCache | None,
    visitors: Visitors,
    scans_to: scans.ScanWriter | None = None,
    link: DigitalLink | None = None,
) -> Response:
    """Answer one Digital Link request (GS1-conformant resolvers allow any origin);
    ``link``: its path parsed already, if the caller has it."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=CORS)
    response = _resolve(
        request,
        ledger,
        base_url,
        witnessing=witnessing,
        cache=cache,
        visitors=visitors,
        scans_to=scans_to,
        link=link,
    )
    response.headers.update(CORS)
    if response.status_code == 200:
        # Every answer points at the item's full set of links (RFC 9264 §6).
        anchor = base_url + request.url.path
        response.headers["Link"] = (
            f'<{anchor}?linkType=linkset>; rel="linkset"; type="application/linkset+json"'
        )
    return response


def _resolve(
    request: Request,
    ledger: Ledger,
    base_url: str,
    *,
    witnessing: Witnessing | None,
    cache: page_facts.VerificationCache | None,
    visitors: Visitors,
    scans_to: scans.ScanWriter | None = None,
    link: DigitalLink | None = None,
) -> Response:
    store = ledger.store
    path = request.url.path
    try:
        if link is None:
            link = parse_digital_link(path)
    except IdentifierError as e:
        lang = _lang(request)
        bad = page_facts.check_digit_error(path)
        msg = (
            pages.TEXT[lang]["bad_digit"].format(**bad)
            if bad
            else pages.TEXT[lang]["bad_other"] + " (" + e.message + ")"
        )
        return _error(request, e, html_message=msg)
    code = link.canonical
    link_type = request.query_params.get("linkType")
    if link_type is not None and link_type not in LINK_TYPES:
        return _error(
            request,
            MalformedInput(
                f"linkType {link_type!r} is not one of {', '.join(LINK_TYPES)}", code="bad_link_type"
            ),
            html_message=pages.TEXT[_lang(request)]["bad_link_type"],
        )
    try:
        scan = None
        if link.kind == "item" and link_type != "linkset":
            scan = visitors.scan_of(request)
        if link_type in (None, "gs1:pip"):
            # The page reads the journey once, for its facts, the scan and the signal.
            facts = page_facts.page_facts(
                ledger, code, witnessing=witnessing, cache=cache, scan=scan, scans_to=scans_to, link=link
            )
            if facts is None:
                return _not_found(request, code)
            if link_type == "gs1:pip" or wants_html(request):
                html = pages.render_page(facts, lang=_lang(request), path=link.path)
                return HTMLResponse(html, headers={"Vary": "Accept, Accept-Language"})
            return JSONResponse(facts, headers={"Vary": "Accept"})
        if not page_facts.is_known(ledger, code):
            return _not_found(request, code)
        if scan is not None:
            scans.record_scan(store, code, region=scan.region, client=scan.client, visitor=scan.visitor)
        if link_type == "linkset":
            media = (
                "application/linkset+json"
                if "application/linkset+json" in request.headers.get("accept", "")
                else "application/json"
            )
            return JSONResponse(linkset(base_url, link.path), media_type=media)
        if link_type == "gs1:recallStatus":
            return JSONResponse(_recall_status(store, code))
        if link_type == "gs1:traceability":
            return JSONResponse(trace.journey(store, code))
        assert link_type == "gs1:epcis"  # LINK_TYPES, checked above
        return JSONResponse(epcis.export_document(store, code), media_type="application/ld+json")
    except LedgerError as e:
        return _error(request, e)


def _not_found(request: Request, code: str) -> Response:
    return _error(
        request,
        NotFound(f"the ledger holds nothing about {code}; check the code on the label"),
        html_message=pages.TEXT[_lang(request)]["not_found"].format(code=code),
    )


def _recall_status(store: Any, code: str) -> dict[str, Any]:
    steps = trace.journey(store, code)["journey"]
    recalls = [s for s in steps if s["stage"] == "recall"]
    return {
        "code": code,
        "recalled": bool(recalls),
        "recalls": [
            {"seq": s["seq"], "eventTime": s["eventTime"], "signer": s["signer"], "via": s["via"]}
            for s in recalls
        ],
    }
