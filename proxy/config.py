"""Configuration: one TOML file, validated completely at start, every error with its key path.

The core validates ``[server]``, ``[plugins]`` and ``[log]``. Every other
section belongs to a plugin, which validates it in ``proxy_configure`` through
:meth:`ConfigContext.section`; what no loaded plugin claims is reported as an
unknown key, so a typo never passes silently.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from proxy import config_messages
from proxy.certificate_routes import CertificateRoutes
from proxy.challenge.fairplay import ContentIdConvention
from proxy.cidr import CidrSet
from proxy.drm import DrmSystem
from proxy.errors import ConfigError, Reason

# The field types are re-exported: settings models of plugins built before they moved import them here.
from proxy.fields import (  # noqa: F401
    ConfigPath,
    Duration,
    Seconds,
    StrictModel,
    parse_duration,
)
from proxy.problem_types import ProblemText
from proxy.secrets import BASE_DIR_CONTEXT_KEY
from proxy.tls import TlsSettings, caller_identity

if TYPE_CHECKING:
    from proxy.services import Services

M = TypeVar("M", bound=BaseModel)


class ListenerConfig(StrictModel):
    """One listener address."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    tls: TlsSettings | None = None
    """Serve this listener over TLS (``cert``, ``key``, optional ``client_ca``); plain by default."""

    @property
    def is_loopback(self) -> bool:
        """True when the listener only accepts connections from this machine."""
        if self.host in ("localhost", "ip6-localhost"):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class HttpListenerConfig(ListenerConfig):
    """``[server.http]``: the player-facing HTTP listener."""

    metrics: bool = False
    """Also serve ``GET /metrics`` here. Off by default: it names backends and counts
    denials per rule, which players need not read; ``[admin]`` serves it instead."""


class CorsConfig(StrictModel):
    """Cross-origin access for browser players (preflight included)."""

    allow_origins: list[str] = Field(default_factory=list)
    """Origins allowed to call the HTTP bridge; ``["*"]`` allows any."""
    allow_headers: list[str] = Field(default_factory=list)
    """Request headers allowed beyond the built-in list (Authorization, Content-Type...)."""
    expose_headers: list[str] = Field(default_factory=list)
    max_age: Seconds = 600
    allow_credentials: bool = False
    """Answer ``Access-Control-Allow-Credentials: true``, so that players in credentials
    mode (cookies, or dash.js with an ``Authorization`` header) may read the answer; the
    allowed origin is then echoed, never ``*`` (a ``*`` in ``allow_origins`` is refused)."""

    @model_validator(mode="after")
    def _credentials_need_named_origins(self) -> CorsConfig:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError(
                'allow_credentials needs the origins named: with "*" in allow_origins any web '
                "page could read answers made with the user's cookies"
            )
        return self


def _default_challenge_limits() -> dict[DrmSystem, int]:
    return {
        DrmSystem.WIDEVINE: 64 * 1024,
        DrmSystem.PLAYREADY: 128 * 1024,
        DrmSystem.FAIRPLAY: 64 * 1024,
        DrmSystem.CLEARKEY: 16 * 1024,
    }


class ServerConfig(StrictModel):
    """``[server]``: listeners, trust, limits, CORS and timeouts."""

    grpc: ListenerConfig = ListenerConfig(port=50051)
    http: HttpListenerConfig = HttpListenerConfig(port=8080)
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(
        default_factory=list
    )
    """CIDRs whose X-Forwarded-For / Forwarded headers, X-Request-Id and gRPC
    ``client`` fields are believed. Nobody is trusted by default."""
    trusted_callers: list[Annotated[str, AfterValidator(caller_identity)]] = Field(
        default_factory=list
    )
    """Client-certificate identities trusted as ``trusted_proxies`` CIDRs are: ``dns:NAME``,
    ``uri:URI`` or a ``spiffe://`` id, matched against the subject alternative names of a
    certificate a listener's ``tls.client_ca`` verified."""
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    """The event loop that serves: ``auto`` takes uvloop when it is installed, else the
    standard library's; ``uvloop`` refuses to start without it."""
    """Worker processes sharing both ports (``auto``: one per CPU this process may use).
    With more than one, rules that keep state need a shared store (``access.state``)."""
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    """The forwarding header the trusted proxies append to: ``X-Forwarded-For`` or RFC 7239
    ``Forwarded``. Only this one is read, so a client can't pick its address with the other."""
    max_challenge_bytes: dict[DrmSystem, Annotated[int, Field(gt=0)]] = Field(
        default_factory=_default_challenge_limits
    )
    """Largest challenge accepted per DRM, checked before any parsing. A table naming
    some DRMs keeps the defaults of the others."""
    max_token_bytes: int = Field(default=8 * 1024, gt=0)
    """Largest access token accepted (an oversize token is TOKEN_MALFORMED)."""
    cors: CorsConfig = CorsConfig()
    shutdown_grace: Duration = 10.0
    """How long SIGTERM waits for in-flight requests."""
    shutdown_delay: Duration = 0.0
    """How long SIGTERM keeps serving with /readyz at 503 and gRPC health NOT_SERVING
    before the listeners close, so load balancers stop sending new requests first."""
    request_read_timeout: Duration = 10.0
    """How long the HTTP bridge waits for a whole request body; a body still arriving
    then is REQUEST_INVALID with HTTP 408 and the connection is closed."""
    http_idle_timeout: Duration = 75.0
    """How long an HTTP connection may stay open with no request under way. It also
    bounds how long a request's headers may take to arrive (aiohttp's keepalive
    timeout, counted from the connection's opening or the previous answer)."""
    header_timeout: Duration = 5.0
    """How long a request's headers may take to arrive, from its first byte; a request
    still in its headers then is answered 408 and the connection closed (slow-header
    attacks). The wait for a next request on an idle connection is ``http_idle_timeout``."""
    max_connections_per_client: int = Field(default=128, ge=0)
    """Open HTTP connections one client address may hold (0: no cap); one more is answered
    429 and closed. Addresses in ``trusted_proxies`` are exempt (they carry many clients)."""
    request_id_header: str = "x-request-id"
    dry_run_claim: str | None = Field(default=None, min_length=1)
    """A token claim that lets a caller ask for dry runs (``dry_run = true``) when it is
    ``true`` in the verified token. Trusted callers (``trusted_proxies``) may always; every
    other dry run is REQUEST_INVALID, since its answer shows the whole decision trace."""
    inspect_requires_token: bool = False
    """Whether ``InspectChallenge`` / ``POST /v1/challenge:inspect`` need a valid token
    (they parse only and issue nothing, so by default they don't)."""
    problems: dict[Reason, ProblemText] = Field(default_factory=dict)
    """``[server.problems.REASON]``: the problem type, user-facing title and detail, and a
    link, that HTTP answers carry for a reason (docs/errors.md, "Problem types")."""
    certificates: CertificateRoutes = CertificateRoutes()
    """``[server.certificates]``: the ``GET /v1/certificates/{drm}`` routes and
    ``GetCertificate`` (docs/challenges.md, "Certificates")."""

    @field_validator("trusted_callers")
    @classmethod
    def _callers_need_client_certificates(
        cls, callers: list[str], info: ValidationInfo
    ) -> list[str]:
        listeners = [info.data.get("grpc"), info.data.get("http")]
        if callers and not any(
            isinstance(listener, ListenerConfig)
            and listener.tls is not None
            and listener.tls.client_ca is not None
            for listener in listeners
        ):
            raise ValueError(
                "no listener verifies client certificates: set client_ca in "
                "server.grpc.tls or server.http.tls"
            )
        return callers

    @cached_property
    def trusted_caller_set(self) -> frozenset[str]:
        """``trusted_callers`` in canonical form, for one set intersection per request."""
        return frozenset(self.trusted_callers)

    @property
    def worker_count(self) -> int:
        """How many worker processes ``workers`` asks for on this machine."""
        if self.workers == "auto":
            from proxy.cpus import available_cpus

            return available_cpus()
        return self.workers

    @field_validator("event_loop")
    @classmethod
    def _loop_installed(cls, value: str) -> str:
        from proxy.event_loop import uvloop_available

        if value == "uvloop" and not uvloop_available():
            raise ValueError("uvloop is not installed here (pip install uvloop, or use auto)")
        return value

    @field_validator("request_read_timeout", "http_idle_timeout", "header_timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value

    @field_validator("request_id_header")
    @classmethod
    def _lower_header(cls, value: str) -> str:
        # gRPC metadata keys are lower case, and HTTP headers are read without regard to case.
        return value.strip().lower()

    @field_validator("max_challenge_bytes", mode="after")
    @classmethod
    def _over_the_defaults(cls, limits: dict[DrmSystem, int]) -> dict[DrmSystem, int]:
        return {**_default_challenge_limits(), **limits}

    def challenge_limit(self, drm: DrmSystem | None) -> int:
        """The size limit for a challenge of this DRM (the largest one when unknown)."""
        if drm is None:
            return max(self.max_challenge_bytes.values(), default=64 * 1024)
        return self.max_challenge_bytes.get(drm, 64 * 1024)

    @cached_property
    def trusted_set(self) -> CidrSet:
        """``trusted_proxies`` compiled once for this config: a binary search per lookup,
        IPv4-mapped networks and addresses unmapped. Request-id trust and client-address
        trust both read it, so they always agree."""
        return CidrSet(self.trusted_proxies)

    def is_trusted(self, address: str | None) -> bool:
        """True when ``address`` (a canonical IP, as :func:`proxy.clientaddr.normalize_ip`
        writes it) lies in one of ``trusted_proxies``."""
        return address in self.trusted_set if address else False


class PluginsConfig(StrictModel):
    """``[plugins]``: which plugins load."""

    blocked: list[str] = Field(default_factory=list)
    """Plugin names (as ``license-proxy plugins`` lists them) that must not load."""
    modules: list[str] = Field(default_factory=list)
    """Extra plugin modules or ``module:Class`` paths to load, for in-house plugins
    not installed as a distribution."""


class LogConfig(StrictModel):
    """``[log]``: log level and format."""

    level: str = Field(default="INFO", pattern="(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    format: str = Field(default="text", pattern="^(text|json)$")
    access: bool = True
    """One line per HTTP request (method, path without query, status, time, request id)."""


class CoreConfig(StrictModel):
    """The sections the core itself validates."""

    server: ServerConfig = ServerConfig()
    plugins: PluginsConfig = PluginsConfig()
    log: LogConfig = LogConfig()


CORE_SECTIONS = ("server", "plugins", "log")


def format_loc(loc: tuple[Any, ...], prefix: str = "") -> str:
    """Turn a pydantic error location into a key path like ``auth.issuers[0].audiences``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).startswith(("function-", "union[", "tagged-union[")):
            continue
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "(top level)"


def validation_errors(
    exc: ValidationError, prefix: str, model: Any = None
) -> list[tuple[str, str]]:
    """Every error of a pydantic ``ValidationError`` as ``(key path, message)``; ``model``
    (what was validated) lets an unknown key's message suggest the key it resembles."""
    return [
        (format_loc(tuple(e["loc"]), prefix), config_messages.message(dict(e), model))
        for e in exc.errors()
    ]


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config file; a syntax error is a ConfigError naming the file and line."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([(str(path), f"not valid TOML: {exc}")]) from None


CleanupContext = Callable[[], AsyncIterator[None]]


@dataclass
class ConfigContext:
    """What ``proxy_configure`` receives: the raw config, a way to validate a
    section, and places to report problems and register background work.

    :ivar raw: the whole parsed TOML document.
    :ivar core: the validated core sections (``server``, ``plugins``, ``log``).
    :ivar base_dir: the config file's folder; relative paths resolve from it.
    :ivar services: the pipeline's shared services (clock, HTTP client...).
    :ivar backend_names: the configured ``[backends.NAME]`` names.
    :ivar backend_drm_systems: the DRM systems each valid backend's vendor serves.
    :ivar plugin_names: every loaded plugin's name.
    :ivar fairplay_conventions: the FairPlay content id conventions by name (the
        core's ``generic`` and those the vendor packages register).
    """

    raw: dict[str, Any]
    core: CoreConfig
    base_dir: Path
    services: Services
    backend_names: frozenset[str] = frozenset()
    plugin_names: frozenset[str] = frozenset()
    backend_drm_systems: dict[str, frozenset[DrmSystem]] = field(default_factory=dict)
    fairplay_conventions: Mapping[str, ContentIdConvention] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    cleanup_contexts: list[CleanupContext] = field(default_factory=list)
    request_headers: list[str] = field(default_factory=list)
    certificates: dict[DrmSystem, bytes] = field(default_factory=dict)
    _claimed: set[str] = field(default_factory=set)

    @property
    def server(self) -> ServerConfig:
        """The validated ``[server]`` section."""
        return self.core.server

    def get(self, path: str, default: Any = None) -> Any:
        """The raw value at a dotted ``path`` (``"access.replay"``), or ``default``."""
        node: Any = self.raw
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def claim(self, path: str) -> None:
        """Mark ``path`` as read by a plugin, so it is not reported as unknown."""
        self._claimed.add(path)

    def section(self, path: str, model: type[M], *, default: Any = None) -> M | None:
        """Validate the section at dotted ``path`` with ``model`` and claim it.

        A missing section validates ``default`` (``{}`` when None). Errors are
        recorded with their full key path and None is returned, so a plugin can
        go on checking the rest of its config.
        """
        self.claim(path)
        value = self.get(path, {} if default is None else default)
        try:
            return model.model_validate(value, context={BASE_DIR_CONTEXT_KEY: self.base_dir})
        except ValidationError as exc:
            self.errors.extend(validation_errors(exc, path, model))
            return None

    def validate(self, path: str, model: type[M] | TypeAdapter[Any], value: Any) -> Any:
        """Validate ``value`` (found at ``path``) with a model or a ``TypeAdapter``, recording
        errors (and returning None) on failure; claims nothing."""
        context = {BASE_DIR_CONTEXT_KEY: self.base_dir}
        try:
            if isinstance(model, TypeAdapter):
                return model.validate_python(value, context=context)
            return model.model_validate(value, context=context)
        except ValidationError as exc:
            validated = getattr(model, "_type", None) if isinstance(model, TypeAdapter) else model
            self.errors.extend(validation_errors(exc, path, validated))
            return None

    def error(self, path: str, message: str) -> None:
        """Report a mistake at ``path``; the proxy will not start."""
        self.errors.append((path, message))

    def warn(self, path: str, message: str) -> None:
        """Report something suspicious at ``path``; the proxy still starts."""
        self.warnings.append((path, message))

    def add_cleanup_ctx(self, ctx: CleanupContext) -> None:
        """Run an async generator for the server's lifetime (aiohttp's ``cleanup_ctx`` pattern).

        Code before its ``yield`` runs once the event loop is up (start
        background refreshes, open pools); code after it runs at shutdown. It is
        not run by ``check-config``.
        """
        self.cleanup_contexts.append(ctx)

    def read_request_header(self, name: str) -> None:
        """Declare that this plugin reads request header ``name`` (a token or device header),
        so that CORS preflights allow browsers to send it."""
        if name not in self.request_headers:
            self.request_headers.append(name)

    def serve_certificate(self, drm: DrmSystem, certificate: bytes, path: str) -> None:
        """Serve ``certificate`` (read at ``path`` of the config) on ``GET /v1/certificates/{drm}``
        and ``GetCertificate`` instead of asking a backend: a FairPlay application certificate,
        or a Widevine service certificate kept in config."""
        if drm in self.certificates:
            self.error(path, f"a {drm.value} certificate is already given elsewhere in the config")
            return
        self.certificates[drm] = certificate

    @property
    def claimed(self) -> frozenset[str]:
        """Every key path some plugin (or the core) reads."""
        return frozenset(self._claimed | set(CORE_SECTIONS))

    def unclaimed(self) -> Iterator[str]:
        """Key paths present in the file that neither the core nor any plugin read."""
        claimed = self._claimed | set(CORE_SECTIONS)

        def walk(node: dict[str, Any], prefix: str) -> Iterator[str]:
            for key, value in node.items():
                path = f"{prefix}.{key}" if prefix else key
                if path in claimed:
                    continue
                if isinstance(value, dict) and any(c.startswith(path + ".") for c in claimed):
                    yield from walk(value, path)
                else:
                    yield path

        return walk(self.raw, "")


def validate_core(raw: dict[str, Any], base_dir: Path) -> tuple[CoreConfig, list[tuple[str, str]]]:
    """Validate the core sections; on errors return the defaults beside the errors."""
    # Section by section: a mistake in [server] must not hide [plugins] (whose modules
    # decide which other sections are known) nor [log].
    errors: list[tuple[str, str]] = []
    valid: dict[str, Any] = {}
    models: dict[str, type[StrictModel]] = {
        "server": ServerConfig,
        "plugins": PluginsConfig,
        "log": LogConfig,
    }
    for name, model in models.items():
        if name not in raw:
            continue
        try:
            valid[name] = model.model_validate(raw[name], context={BASE_DIR_CONTEXT_KEY: base_dir})
        except ValidationError as exc:
            errors += validation_errors(exc, name, model)
    return CoreConfig(**valid), errors
