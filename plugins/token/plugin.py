"""The ``token`` plugin: ``[auth]`` configuration and the ``proxy_authenticate`` hook."""

from __future__ import annotations

from plugins.token.config import AuthConfig
from plugins.token.keys import load_key
from plugins.token.sources import find_token
from plugins.token.verify import Issuer, TokenVerifier
from proxy import hookimpl
from proxy.config import ConfigContext
from proxy.errors import ProxyError, Reason
from proxy.model import Principal, RequestContext


class TokenPlugin:
    """Verifies JWS access tokens from the configured issuers."""

    def __init__(self) -> None:
        self.settings = AuthConfig()
        self.verifier: TokenVerifier | None = None

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Validate ``[auth]`` and parse every issuer's keys once."""
        settings = config.section("auth", AuthConfig)
        if settings is None:
            return
        self.settings = settings
        if settings.header:
            config.read_request_header(settings.header)
        issuers = []
        loopback = config.server.grpc.is_loopback and config.server.http.is_loopback
        for i, issuer in enumerate(settings.issuers):
            path = f"auth.issuers[{i}]"
            if issuer.development and not loopback:
                config.error(
                    f"{path}.development",
                    "the development key can't be used on a non-loopback listener",
                )
            keys = []
            for j, key_config in enumerate(issuer.keys):
                try:
                    keys.append(load_key(key_config, issuer.algorithms, f"{issuer.issuer}#{j}"))
                except ValueError as exc:
                    config.error(f"{path}.keys[{j}]", str(exc))
            issuers.append(Issuer(issuer, keys))
        seen: set[str] = set()
        for i, issuer in enumerate(settings.issuers):
            if issuer.issuer in seen:
                config.error(
                    f"auth.issuers[{i}].issuer", f"issuer {issuer.issuer!r} is listed twice"
                )
            seen.add(issuer.issuer)
        if not settings.issuers:
            config.warn("auth.issuers", "no issuer is configured: every token will be refused")
        self.verifier = TokenVerifier(
            issuers,
            clock=config.services.clock.time,
            max_token_bytes=config.server.max_token_bytes,
        )

    @hookimpl
    def proxy_authenticate(self, ctx: RequestContext) -> Principal | None:
        """Verify the request's token; None when it carries none."""
        token = find_token(ctx.request, self.settings)
        if token is None:
            return None
        if self.verifier is None or not self.verifier.issuers:
            raise ProxyError(Reason.TOKEN_ISSUER_MISMATCH, "no token issuer is configured")
        principal = self.verifier.verify(token)
        ctx.note(f"verified by key {principal.key_id} of issuer {principal.issuer}")
        return principal
