"""The ``token`` plugin: ``[auth]`` configuration and the ``proxy_authenticate`` hook."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from plugins.token import metrics
from plugins.token.config import HMAC_ALGORITHMS, AuthConfig, IssuerConfig
from plugins.token.issuer import Issuer
from plugins.token.jwks import RemoteKeys
from plugins.token.keys import VerificationKey, load_configured_key
from plugins.token.renewal import may_renew_after_expiry, renew_after_expiry
from plugins.token.sources import find_token
from plugins.token.verify import TokenVerifier
from proxy import ConfigContext, KeySourceStatus, ProxyError, Reason, hookimpl
from proxy.model import Principal, RequestContext


class TokenPlugin:
    """Verifies JWS access tokens from the configured issuers, keeping remote key sets fresh."""

    def __init__(self) -> None:
        self.settings = AuthConfig()
        self.verifier: TokenVerifier | None = None
        self.remote: list[RemoteKeys] = []
        self._remote_issuers: list[Issuer] = []
        self.renewal_grace = False
        self.cookie_origins: frozenset[str] = frozenset()

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Validate ``[auth]``, parse every configured key once and plan the key-set refreshes."""
        settings = config.section("auth", AuthConfig)
        if settings is None:
            return
        self.settings = settings
        if settings.header:
            config.read_request_header(settings.header)
        if settings.cookie:
            self._check_cookie(config)
        loopback = config.server.grpc.is_loopback and config.server.http.is_loopback
        clock = config.services.clock
        issuers = []
        seen: set[str] = set()
        for i, issuer_config in enumerate(settings.issuers):
            path = f"auth.issuers[{i}]"
            if issuer_config.issuer in seen:
                config.error(f"{path}.issuer", f"issuer {issuer_config.issuer!r} is listed twice")
            seen.add(issuer_config.issuer)
            if issuer_config.development and not loopback:
                config.error(
                    f"{path}.development",
                    "the development key can't be used on a non-loopback listener",
                )
            issuer = Issuer(issuer_config, self._configured_keys(config, path, issuer_config))
            issuers.append(issuer)
            metrics.KEYS_LOADED.labels(issuer.name).set(len(issuer.keys))
            if issuer_config.remote_url is not None:
                self._plan_remote_keys(config, path, issuer)
        if not settings.issuers:
            config.warn("auth.issuers", "no issuer is configured: every token will be refused")
        self._plan_renewal_grace(config, settings)
        self.verifier = TokenVerifier(
            issuers,
            clock=clock,
            max_token_bytes=config.server.max_token_bytes,
            cache_size=settings.cache_size,
        )
        if self.remote:
            config.add_cleanup_ctx(self._keep_keys_fresh)
            config.services.status.add_key_sources(self.key_source_status)

    def _plan_renewal_grace(self, config: ConfigContext, settings: AuthConfig) -> None:
        """With an issuer's ``renewal_grace``, license sessions are recorded (by the
        ``access_state`` plugin, in the state rules' batch) so renewals can be recognised."""
        graced = [i for i, issuer in enumerate(settings.issuers) if issuer.renewal_grace > 0]
        if not graced:
            return
        if "access_state" not in config.plugin_names:
            for i in graced:
                config.error(
                    f"auth.issuers[{i}].renewal_grace",
                    "needs the access_state plugin, which records license sessions",
                )
            return
        self.renewal_grace = True
        config.services.sessions.track()

    def key_source_status(self) -> list[KeySourceStatus]:
        """The state of every remote key set (the admin API's ``key-sources``)."""
        return [
            source.status(len(issuer.keys))
            for source, issuer in zip(self.remote, self._remote_issuers, strict=True)
        ]

    def _check_cookie(self, config: ConfigContext) -> None:
        """A token cookie is used only from the origins CORS names (plugins/token/sources.py)."""
        cors = config.server.cors
        if "*" in cors.allow_origins:
            config.error(
                "auth.cookie",
                'a token cookie needs server.cors.allow_origins named, not "*": any web page '
                "could make the user's browser spend it",
            )
            return
        self.cookie_origins = frozenset(cors.allow_origins)
        if not cors.allow_origins:
            config.warn(
                "auth.cookie",
                "server.cors.allow_origins is empty: only requests with no Origin (not "
                "from a web page) may use the cookie; list your player pages' origins",
            )
        elif not cors.allow_credentials:
            config.warn(
                "auth.cookie",
                "server.cors.allow_credentials is off: browsers send the cookie cross-origin "
                "only in credentials mode, and then hide answers that do not allow it",
            )

    @staticmethod
    def _configured_keys(
        config: ConfigContext, path: str, issuer: IssuerConfig
    ) -> list[VerificationKey]:
        keys: list[VerificationKey] = []
        for j, key_config in enumerate(issuer.keys):
            try:
                loaded, warnings = load_configured_key(
                    key_config,
                    issuer.algorithms,
                    f"{path}.keys[{j}]",
                    now=config.services.clock.time(),
                )
            except ValueError as exc:
                config.error(f"{path}.keys[{j}].{key_config.source}", str(exc))
                continue
            keys.extend(loaded)
            for warning in warnings:
                config.warn(f"{path}.keys[{j}].{key_config.source}", warning)
        return keys

    def _plan_remote_keys(self, config: ConfigContext, path: str, issuer: Issuer) -> None:
        issuer_config = issuer.config
        field = "openid_configuration" if issuer_config.openid_configuration else "jwks_uri"
        if not set(issuer_config.algorithms) - HMAC_ALGORITHMS:
            config.error(
                f"{path}.{field}",
                "published key sets hold public keys only; HS* algorithms need a secret in keys",
            )
            return

        def install(keys: list[VerificationKey]) -> None:
            issuer.replace_remote_keys(keys)
            metrics.KEYS_LOADED.labels(issuer.name).set(len(issuer.keys))

        source = RemoteKeys(issuer_config, config.services.clock, install)
        # A reload starts with the keys the running pipeline fetched: the identity
        # provider may be down right now, and tokens must keep verifying.
        source.seed_from_last_good()
        issuer.refresher = source
        self.remote.append(source)
        self._remote_issuers.append(issuer)

    async def _keep_keys_fresh(self) -> AsyncIterator[None]:
        """Cleanup context: one HTTP session for every issuer's key fetches, and their schedules.
        Nothing here waits for a fetch, so the listeners start at once."""
        connector = aiohttp.TCPConnector(limit=16, ttl_dns_cache=300)
        async with aiohttp.ClientSession(connector=connector, raise_for_status=False) as session:
            for source in self.remote:
                source.start(session)
            try:
                yield
            finally:
                for source in self.remote:
                    await source.stop()

    @hookimpl
    async def proxy_authenticate(self, ctx: RequestContext) -> Principal | None:
        """Verify the request's token; None when it carries none."""
        token = find_token(ctx.request, self.settings, origins=self.cookie_origins)
        if token is None:
            return None
        if self.verifier is None or not self.verifier.issuers:
            raise ProxyError(Reason.TOKEN_ISSUER_MISMATCH, "no token issuer is configured")
        try:
            principal = await self.verifier.verify(token)
        except ProxyError as error:
            if (
                error.reason is Reason.TOKEN_EXPIRED
                and self.renewal_grace
                and may_renew_after_expiry(ctx)
            ):
                return await renew_after_expiry(ctx, self.verifier, token, error)
            raise
        ctx.note(f"verified by key {principal.key_id} of issuer {principal.issuer}")
        return principal
