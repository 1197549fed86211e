"""The admin API: an aiohttp application of its own, served on ``[admin]``'s listener only.

- ``GET /metrics``: Prometheus text format (``admin.metrics``; no token, for scrapers);
- ``POST /admin/v1/revocations``: revoke a subject (optionally for one issuer) or a token
  (``jti``) until a time; ``GET`` shows one, ``DELETE`` lifts it;
- ``GET /admin/v1/sessions?subject=S``: the concurrency sessions a subject holds;
  ``DELETE`` ends them all, or one (``&session=ID``);
- ``GET /admin/v1/circuits``: every vendor backend's circuit breaker;
- ``GET /admin/v1/key-sources``: every remote key set's refresh state;
- ``POST /admin/v1/reload``: reload the configuration as SIGHUP does.

Every ``/admin/v1/`` call needs an operator (an admin token) and becomes one
:class:`~proxy.admin.actions.AdminAction` for the ``on_action`` callback, refused
calls included. Errors are problem+json with the reason codes of the license API.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy.admin.actions import AdminAction, AdminActionKind, AdminActionSink
from proxy.admin.auth import AdminTokenAuthenticator, Authenticator, Operator, authenticate
from proxy.admin.settings import AdminConfig
from proxy.clientaddr import normalize_ip
from proxy.errors import ProxyError, Reason
from proxy.fields import parse_duration
from proxy.http_problems import problem, transport_error
from proxy.logs import new_request_id, request_id_var
from proxy.pipeline import Pipeline
from proxy.revocation import MAX_VALUE_LENGTH, Revocation, RevocationKind, Revocations
from proxy.state import StateUnavailable

log = logging.getLogger("proxy.admin")

PREFIX = "/admin/v1"
#: Largest admin request body read.
MAX_BODY = 64 * 1024

Reload = Callable[[], Awaitable[bool]]
Handler = Callable[[web.Request, dict[str, str]], Awaitable[tuple[Any, str]]]

REQUEST_ID: web.RequestKey[str] = web.RequestKey("admin_request_id", str)


def rfc3339(seconds: float) -> str:
    """Seconds since the epoch as an RFC 3339 UTC time."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _invalid(field: str, detail: str) -> ProxyError:
    return ProxyError(Reason.REQUEST_INVALID, detail, field=field)


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(field, f"{field} must be a non-empty string")
    if len(value) > MAX_VALUE_LENGTH:
        raise _invalid(field, f"{field} is longer than {MAX_VALUE_LENGTH} characters")
    return value.strip()


class AdminApi:
    """Builds the admin application over the running pipeline.

    :param pipeline: the pipeline serving now (a reload swaps it).
    :param settings: ``[admin]`` as the listener was started with.
    :param on_action: receives every admin action.
    :param reload: reloads the configuration; None when the app can't reload.
    """

    def __init__(
        self,
        pipeline: Callable[[], Pipeline],
        settings: AdminConfig,
        on_action: AdminActionSink,
        reload: Reload | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._on_action = on_action
        self._reload = reload
        self._methods_for: tuple[Any, list[Authenticator]] = (None, [])
        self.app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY)
        if settings.metrics:
            self.app.router.add_get("/metrics", self.metrics)
        routes: list[tuple[str, str, AdminActionKind, Handler]] = [
            ("POST", "/revocations", AdminActionKind.REVOKE, self.revoke),
            ("GET", "/revocations", AdminActionKind.SHOW_REVOCATION, self.show_revocation),
            ("DELETE", "/revocations", AdminActionKind.LIFT_REVOCATION, self.lift_revocation),
            ("GET", "/sessions", AdminActionKind.LIST_SESSIONS, self.list_sessions),
            ("DELETE", "/sessions", AdminActionKind.END_SESSIONS, self.end_sessions),
            ("GET", "/circuits", AdminActionKind.SHOW_CIRCUITS, self.circuits),
            ("GET", "/key-sources", AdminActionKind.SHOW_KEY_SOURCES, self.key_sources),
            ("POST", "/reload", AdminActionKind.RELOAD, self.reload),
        ]
        for method, path, kind, handler in routes:
            self.app.router.add_route(method, PREFIX + path, self._action(kind, handler))

    # -- plumbing --------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        request_id = new_request_id()
        request[REQUEST_ID] = request_id
        token = request_id_var.set(request_id)
        try:
            try:
                response = await handler(request)
            except ProxyError as error:
                response = problem(error, request_id)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                refused, status = transport_error(exc)
                response = problem(refused, request_id, status=status)
            except Exception:
                log.exception("unexpected error serving admin %s %s", request.method, request.path)
                response = problem(ProxyError(Reason.INTERNAL), request_id)
            response.headers["X-Request-Id"] = request_id
            response.headers["Cache-Control"] = "no-store"
            return response
        finally:
            request_id_var.reset(token)

    def _action(self, kind: AdminActionKind, handler: Handler) -> Callable[..., Any]:
        async def call(request: web.Request) -> web.Response:
            target: dict[str, str] = {}
            operator: Operator | None = None
            try:
                operator = authenticate(request, self.methods())
                body, detail = await handler(request, target)
            except ProxyError as error:
                self._record(request, kind, operator, target, error.reason.value, error.detail)
                raise
            except StateUnavailable as exc:
                log.warning("admin %s: the state store is unavailable: %s", kind.value, exc)
                unavailable = ProxyError(
                    Reason.STATE_UNAVAILABLE, "the shared state store can't be reached"
                )
                self._record(
                    request, kind, operator, target, unavailable.reason.value, unavailable.detail
                )
                raise unavailable from None
            self._record(request, kind, operator, target, "ok", detail)
            return web.json_response(body)

        return call

    def methods(self) -> list[Authenticator]:
        """The credentials the running pipeline's ``[admin]`` accepts (a reload may rotate
        the admin key; the listener itself stays as it started)."""
        settings = self._pipeline().admin
        owner, methods = self._methods_for
        if owner is not settings:
            methods = []
            if settings is not None and settings.token is not None:
                methods.append(AdminTokenAuthenticator(settings.token))
            self._methods_for = (settings, methods)
        return methods

    def _record(
        self,
        request: web.Request,
        kind: AdminActionKind,
        operator: Operator | None,
        target: dict[str, str],
        outcome: str,
        detail: str,
    ) -> None:
        action = AdminAction(
            time=self._pipeline().services.clock.time(),
            request_id=request[REQUEST_ID],
            action=kind,
            operator=operator.name if operator else None,
            client_address=normalize_ip(request.remote),
            target=dict(target),
            outcome=outcome,
            detail=detail,
        )
        try:
            self._on_action(action)
        except Exception:
            log.exception("the admin action callback failed; the action stands")

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.read()
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ProxyError(Reason.REQUEST_INVALID, "the body is not a JSON object") from None
        if not isinstance(document, dict):
            raise ProxyError(Reason.REQUEST_INVALID, "the body is not a JSON object")
        return document

    def _revocations(self) -> Revocations:
        services = self._pipeline().services
        return Revocations(services.state, services.clock)

    @staticmethod
    def _named(source: Any, target: dict[str, str]) -> Revocation:
        """The revocation ``source`` (a JSON body or a query) names: a subject (with an
        optional issuer) or a jti, never both."""
        subject, jti = source.get("subject"), source.get("jti")
        if (subject is None) == (jti is None):
            raise _invalid("subject", "name either a subject or a jti")
        if jti is not None:
            if source.get("issuer") is not None:
                raise _invalid("issuer", "issuer goes with a subject, not a jti")
            target["jti"] = _text(jti, "jti")
            return Revocation(RevocationKind.JTI, target["jti"])
        target["subject"] = _text(subject, "subject")
        issuer = source.get("issuer")
        if issuer is not None:
            target["issuer"] = _text(issuer, "issuer")
        return Revocation(RevocationKind.SUBJECT, target["subject"], target.get("issuer"))

    # -- routes ----------------------------------------------------------------------

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text format."""
        response = web.Response(body=generate_latest())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def revoke(self, request: web.Request, target: dict[str, str]) -> tuple[Any, str]:
        """Revoke a subject or a jti ``until`` an RFC 3339 time or ``for`` a duration."""
        document = await self._json(request)
        unknown = set(document) - {"subject", "issuer", "jti", "until", "for"}
        if unknown:
            raise _invalid(sorted(unknown)[0], "unknown field")
        named = self._named(document, target)
        pipeline = self._pipeline()
        now = pipeline.services.clock.time()
        until = self._until(document, now)
        longest = pipeline.admin.revocations.max_duration if pipeline.admin else None
        if longest is not None and until - now > longest:
            raise _invalid("until", f"a revocation lasts at most {longest:g} s")
        revocation = Revocation(named.kind, named.value, named.issuer, until)
        await self._revocations().revoke(revocation)
        target["until"] = rfc3339(until)
        return self._shown(revocation, until), f"revoked until {target['until']}"

    @staticmethod
    def _until(document: dict[str, Any], now: float) -> float:
        until, length = document.get("until"), document.get("for")
        if (until is None) == (length is None):
            raise _invalid("until", "give either until (an RFC 3339 time) or for (a duration)")
        if length is not None:
            try:
                seconds = parse_duration(length)
            except ValueError:
                raise _invalid("for", "for is not a duration such as '1h' or 3600") from None
            result = now + seconds
        else:
            try:
                moment = datetime.fromisoformat(str(until))
            except ValueError:
                raise _invalid("until", "until is not an RFC 3339 time") from None
            if moment.tzinfo is None:
                raise _invalid("until", "until needs a time zone (e.g. Z)")
            result = moment.timestamp()
        if result <= now:
            raise _invalid("until", "the revocation would end before it began")
        return result

    @staticmethod
    def _shown(revocation: Revocation, until: float | None) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "kind": revocation.kind.value,
            "value": revocation.value,
            "revoked": until is not None,
        }
        if revocation.issuer is not None:
            shown["issuer"] = revocation.issuer
        if until is not None:
            shown["until"] = rfc3339(until)
        return shown

    async def show_revocation(
        self, request: web.Request, target: dict[str, str]
    ) -> tuple[Any, str]:
        """Whether a subject or jti is revoked, and until when."""
        named = self._named(request.query, target)
        until = await self._revocations().lookup(named)
        return self._shown(named, until), "revoked" if until is not None else "not revoked"

    async def lift_revocation(
        self, request: web.Request, target: dict[str, str]
    ) -> tuple[Any, str]:
        """Lift a revocation before its time."""
        named = self._named(request.query, target)
        lifted = await self._revocations().lift(named)
        return {**self._shown(named, None), "lifted": lifted}, "lifted" if lifted else "none"

    def _sessions_of(self, request: web.Request, target: dict[str, str]) -> tuple[Any, str]:
        directory = self._pipeline().services.status.sessions
        if directory is None:
            raise ProxyError(
                Reason.REQUEST_INVALID,
                "no concurrency rule is configured (access.concurrency), so no sessions are kept",
            )
        target["subject"] = _text(request.query.get("subject"), "subject")
        return directory, target["subject"]

    async def list_sessions(self, request: web.Request, target: dict[str, str]) -> tuple[Any, str]:
        """The live sessions a subject holds."""
        directory, subject = self._sessions_of(request, target)
        now = self._pipeline().services.clock.time()
        found = await directory.list_sessions(subject, now=now)
        sessions = [{"session": s.session, "expires": rfc3339(s.expires)} for s in found]
        return {"subject": subject, "sessions": sessions}, f"{len(sessions)} live"

    async def end_sessions(self, request: web.Request, target: dict[str, str]) -> tuple[Any, str]:
        """End one session (``session=ID``) or all of a subject's."""
        directory, subject = self._sessions_of(request, target)
        only = request.query.get("session")
        if only is not None:
            target["session"] = _text(only, "session")
        now = self._pipeline().services.clock.time()
        ended = await directory.end_sessions(
            subject, [target["session"]] if only is not None else None, now=now
        )
        return {"subject": subject, "ended": ended}, f"{ended} ended"

    async def circuits(self, request: web.Request, target: dict[str, str]) -> tuple[Any, str]:
        """Every vendor backend's circuit: state, failures in a row, seconds until a probe."""
        pipeline = self._pipeline()
        upstream = pipeline.services.upstream
        now = pipeline.services.clock.monotonic()
        shown = []
        for name, backend in sorted(pipeline.backends.items()):
            if backend.local:
                continue
            breaker = upstream.existing_breaker(name)
            entry: dict[str, Any] = {
                "backend": name,
                "vendor": backend.spec.name,
                "state": breaker.state.name.lower() if breaker else "closed",
                "failures": breaker.failures if breaker else 0,
                "called": breaker is not None,
            }
            if breaker is not None and breaker.state.name == "OPEN":
                wait = breaker.opened_at + breaker.settings.reset_timeout - now
                entry["probe_in"] = round(max(0.0, wait), 3)
            shown.append(entry)
        open_count = sum(1 for c in shown if c["state"] != "closed")
        return {"circuits": shown}, f"{len(shown)} backends, {open_count} not closed"

    async def key_sources(self, request: web.Request, target: dict[str, str]) -> tuple[Any, str]:
        """Every remote key set's refresh state."""
        sources = self._pipeline().services.status.key_sources()
        shown = [
            {
                "issuer": s.issuer,
                "url": s.url,
                "keys": s.keys,
                "fetches": s.fetches,
                "successes": s.successes,
                "last_success": rfc3339(s.last_success) if s.last_success else None,
                "next_refresh_in": round(s.next_refresh_in, 3),
                "failing": s.failing,
            }
            for s in sources
        ]
        failing = sum(1 for s in sources if s.failing)
        return {"key_sources": shown}, f"{len(shown)} sources, {failing} failing"

    async def reload(self, request: web.Request, target: dict[str, str]) -> tuple[Any, str]:
        """Reload the configuration file; the running config stays when the new one fails."""
        if self._reload is None:
            raise ProxyError(
                Reason.REQUEST_INVALID, "this proxy was started without a config it can reload"
            )
        reloaded = await self._reload()
        return {"reloaded": reloaded}, "reloaded" if reloaded else "refused (see the log)"


__all__ = ["PREFIX", "AdminApi", "rfc3339"]
