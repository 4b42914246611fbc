"""The regulator console at ``/console/``: findings, product chains with every entry's
proof, recall impact with buyers' contacts, parties with their credit, statistics and the
audit report, for a market regulator's bearer token only (api/console/session.py).

Server-rendered with Jinja2 (autoescape on: names and codes are whatever signers wrote),
in Chinese or English, usable without JavaScript. ``CSP`` admits the console's one
stylesheet by its hash and lets forms post back to this server only."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from api.console import views
from api.console.session import (
    COOKIE,
    LOGIN_COOKIE,
    LOGIN_LIFETIME,
    Session,
    Sessions,
    cookie_header,
)
from api.console.text import STAGES, TEXT
from api.errors import status_of
from api.pages import HTML_LANG, choose_lang
from api.settings import Settings
from api.templating import environment, style_hash
from ledger.core.errors import ConfigError, LedgerError, MalformedInput
from ledger.core.tokens import read_token
from ledger.log.sequencer import Ledger

PREFIX = "/console"
MAX_FORM = 16 * 1024  # a login form: a token of a few hundred bytes

_env = environment()
STYLE_HASH = style_hash(_env, "console/base.html")
# As the consumer page's policy, but forms may post back here (and only here).
CSP = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


class Console:
    """The console's routes over one ledger; sessions are opened on first use."""

    def __init__(self, ledger: Ledger, settings: Settings) -> None:
        self.ledger, self.settings = ledger, settings
        self._sessions: Sessions | None = None

    @property
    def sessions(self) -> Sessions:
        if self._sessions is None:
            self._sessions = Sessions(self.settings.home)
        return self._sessions

    def routes(self) -> list[BaseRoute]:
        page = self._page
        return [
            Route(PREFIX, lambda r: RedirectResponse(PREFIX + "/", 308)),
            Route(PREFIX + "/login", self.login_form, methods=["GET"]),
            Route(PREFIX + "/login", self.login, methods=["POST"]),
            Route(PREFIX + "/logout", self.logout, methods=["POST"]),
            Route(PREFIX + "/", page(self.findings)),
            Route(PREFIX + "/chain", page(self.chain)),
            Route(PREFIX + "/entry/{seq:int}", page(self.entry)),
            Route(PREFIX + "/parties", page(self.parties)),
            Route(PREFIX + "/party/{party}", page(self.party)),
            Route(PREFIX + "/stats", page(self.stats)),
            Route(PREFIX + "/report", page(self.report)),
        ]

    # --- rendering ------------------------------------------------------------------------------

    @staticmethod
    def _lang(request: Request) -> str:
        return choose_lang(request.query_params.get("lang"), request.headers.get("accept-language"))

    def _render(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        session: Session | None = None,
        nav: str = "",
        **ctx: Any,
    ) -> HTMLResponse:
        lang = self._lang(request)
        other = "en" if lang == "zh" else "zh"
        query = {k: v for k, v in request.query_params.items() if k != "lang"}

        def u(path: str, **params: Any) -> str:
            clean = {k: v for k, v in params.items() if v not in (None, "")}
            return PREFIX + path + "?" + urlencode({**clean, "lang": lang})

        html = _env.get_template(f"console/{template}").render(
            t=TEXT[lang],
            lang=lang,
            html_lang=HTML_LANG[lang],
            other_html_lang=HTML_LANG[other],
            switch_href=request.url.path + "?" + urlencode({**query, "lang": other}),
            u=u,
            session=session,
            nav=nav,
            stage_name=lambda s: STAGES.get(s, (s, s))[0 if lang == "zh" else 1] if s else "",
            names=ctx.pop("names", None) or (views.names(self.ledger) if session else {}),
            **ctx,
        )
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def _error(self, request: Request, err: LedgerError, session: Session | None) -> Response:
        status = status_of(err)
        t = TEXT[self._lang(request)]
        return self._render(
            request,
            "error.html",
            status=status,
            session=session,
            title=t["not_found"] if status == 404 else t["error"],
            message=err.message,
            code=err.code,
        )

    # --- sessions ---------------------------------------------------------------------------

    def _session(self, request: Request) -> Session | None:
        """The request's live session whose token is still a regulator's, or None."""
        s = self.sessions.get(request.cookies.get(COOKIE))
        if s is None:
            return None
        try:
            viewer = self.ledger.viewer_for_token(s.token)
        except LedgerError:  # expired, revoked key, malformed: the session ends with it
            self.sessions.end(s.sid)
            return None
        if viewer.kind != "regulator":  # the party lost its regulator role
            self.sessions.end(s.sid)
            return None
        return s

    def _to_login(self, request: Request) -> Response:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(
            PREFIX + "/login?" + urlencode({"next": here, "lang": self._lang(request)}),
            status_code=303,
            headers={"Cache-Control": "no-store"},
        )

    def _page(self, handler: Callable[[Request, Session], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                session = self._session(request)
            except ConfigError as e:
                return self._error(request, e, None)
            if session is None:
                return self._to_login(request)
            try:
                return handler(request, session)
            except LedgerError as e:
                return self._error(request, e, session)

        return endpoint

    def login_form(self, request: Request, *, status: int = 200, message: str = "") -> Response:
        try:
            sessions = self.sessions
        except ConfigError as e:
            return self._error(request, e, None)
        nonce = sessions.new_nonce()
        response = self._render(
            request,
            "login.html",
            status=status,
            message=message,
            csrf=sessions.login_csrf(nonce),
            next=_safe_next(request.query_params.get("next")),
        )
        response.headers.append(
            "Set-Cookie", cookie_header(LOGIN_COOKIE, nonce, max_age=LOGIN_LIFETIME, secure=_secure(request))
        )
        return response

    async def _form(self, request: Request) -> dict[str, str]:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()
        if media != "application/x-www-form-urlencoded" and body:
            raise MalformedInput("the console's forms are sent as application/x-www-form-urlencoded")
        if len(body) > MAX_FORM:
            raise MalformedInput(f"a console form is at most {MAX_FORM} bytes")
        try:
            fields = parse_qs(
                body.decode(), keep_blank_values=True, max_num_fields=10, strict_parsing=bool(body)
            )
        except (UnicodeDecodeError, ValueError):
            raise MalformedInput("the form is not readable") from None
        return {k: v[0] for k, v in fields.items()}

    async def login(self, request: Request) -> Response:
        t = TEXT[self._lang(request)]
        try:
            form = await self._form(request)
            sessions = self.sessions
        except LedgerError as e:
            return self._error(request, e, None)
        if not sessions.login_csrf_ok(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):
            return self._render(
                request, "error.html", status=403, title=t["error"], message=t["csrf_failed"], code="csrf"
            )
        token = form.get("token", "").strip()
        try:
            viewer = await run_in_threadpool(self.ledger.viewer_for_token, token)
            expires = read_token(token)[0].exp
        except LedgerError as e:
            return self.login_form(request, status=401, message=e.message)
        if viewer.kind != "regulator":
            return self.login_form(request, status=403, message=t["not_regulator"].format(party=viewer.party))
        assert viewer.party is not None
        s = sessions.start(token=token, party=viewer.party, token_expires=expires)
        response = RedirectResponse(
            _safe_next(form.get("next")), status_code=303, headers={"Cache-Control": "no-store"}
        )
        response.headers.append(
            "Set-Cookie", cookie_header(COOKIE, s.sid, max_age=s.expires - _now(), secure=_secure(request))
        )
        response.headers.append(
            "Set-Cookie", cookie_header(LOGIN_COOKIE, "", max_age=0, secure=_secure(request))
        )
        return response

    async def logout(self, request: Request) -> Response:
        t = TEXT[self._lang(request)]
        try:
            form = await self._form(request)
            session = await run_in_threadpool(self._session, request)
        except LedgerError as e:
            return self._error(request, e, None)
        if session is None:
            return self._to_login(request)
        if not self.sessions.csrf_ok(session, form.get("csrf")):
            return self._render(
                request,
                "error.html",
                status=403,
                session=session,
                title=t["error"],
                message=t["csrf_failed"],
                code="csrf",
            )
        self.sessions.end(session.sid)
        response = RedirectResponse(
            PREFIX + "/login?" + urlencode({"lang": self._lang(request)}),
            status_code=303,
            headers={"Cache-Control": "no-store"},
        )
        response.headers.append("Set-Cookie", cookie_header(COOKIE, "", max_age=0, secure=_secure(request)))
        return response

    # --- pages ------------------------------------------------------------------------------

    def findings(self, request: Request, session: Session) -> Response:
        q = request.query_params
        data = views.findings_page(
            self.ledger,
            rule=q.get("rule"),
            party=q.get("party"),
            severity=q.get("severity"),
            since=q.get("since"),
            until=q.get("until"),
        )
        return self._render(
            request, "findings.html", session=session, nav="findings", names=views.names(self.ledger), **data
        )

    def chain(self, request: Request, session: Session) -> Response:
        data = views.chain_page(self.ledger, request.query_params.get("code", ""))
        return self._render(
            request,
            "chain.html",
            session=session,
            nav="findings",
            names=views.names(self.ledger),
            finding=request.query_params.get("finding", ""),
            **data,
        )

    def entry(self, request: Request, session: Session) -> Response:
        data = views.entry_page(self.ledger, int(request.path_params["seq"]))
        return self._render(
            request, "entry.html", session=session, nav="findings", names=views.names(self.ledger), **data
        )

    def parties(self, request: Request, session: Session) -> Response:
        return self._render(
            request, "parties.html", session=session, nav="parties", **views.parties_page(self.ledger)
        )

    def party(self, request: Request, session: Session) -> Response:
        after = request.query_params.get("after", "-1")
        if not re.fullmatch(r"-1|[0-9]{1,18}", after):
            raise MalformedInput(f"after is a seq, not {after[:40]!r}")
        data = views.party_page(self.ledger, request.path_params["party"], after=int(after))
        return self._render(request, "party.html", session=session, nav="parties", **data)

    def stats(self, request: Request, session: Session) -> Response:
        from api.report import statistics_html
        from ledger.queries.stats import statistics

        # The report's own markup: it escapes every value it draws (api/report.py).
        charts = Markup(statistics_html(statistics(self.ledger.store)))
        return self._render(request, "stats.html", session=session, nav="stats", charts=charts)

    def report(self, request: Request, session: Session) -> Response:
        from api.report import collect, report_heading, report_sections
        from ledger.log.home import Home

        scope = request.query_params.get("scope") or None
        doc = collect(self.ledger, Home(self.settings.home), scope=scope)
        return self._render(
            request,
            "report.html",
            session=session,
            nav="report",
            scope=scope,
            heading=Markup(report_heading(doc)),
            sections=Markup(report_sections(doc)),
        )


def _now() -> int:
    import time

    return int(time.time())


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _safe_next(value: str | None) -> str:
    """Where to go after login: a console page of this server, never another site."""
    if (
        value
        and value.startswith(PREFIX + "/")
        and "//" not in value
        and "\\" not in value
        and "/.." not in value
        and not any(ord(c) < 0x20 for c in value)
    ):
        return value
    return PREFIX + "/"


def console_routes(ledger: Ledger, settings: Settings) -> list[BaseRoute]:
    return Console(ledger, settings).routes()
