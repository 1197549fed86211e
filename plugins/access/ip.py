"""The ``access_ip`` plugin: client address allow and deny lists, globally and per policy.

The deny list wins over the allow list; a non-empty allow list admits only
the addresses it holds. Lists are compiled once into :class:`proxy.cidr.CidrSet`
(a binary search, however long the list). A token may narrow them further
with a claim listing the addresses it is good for (``allowed_ip_addresses``,
as Axinom names it): the client must then be in the claim *and* pass the
configured lists; a claim never admits an address the lists refuse.

Policy rules (``[[policies]] access.ip_allow / ip_deny``) apply once the
policy is elected, from ``proxy_authorize_policy``, before any vendor is called.

A client whose address is unknown (a unix socket peer, a trusted proxy that
names an unknown hop) is refused by every list, deny lists included.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from plugins.access.claims import as_list
from plugins.access.metrics import ACCESS_DENIALS
from proxy import (
    AddressKey,
    CidrSet,
    ConfigContext,
    ConfigPath,
    ProxyError,
    Reason,
    StrictModel,
    address_key,
    hookimpl,
    parse_network,
    read_network_file,
)
from proxy.model import Principal, RequestContext
from proxy.policy import EffectivePolicy, PolicyAccess

RULE = "access_ip"
#: Entries read from a token's address claim at most.
MAX_CLAIM_ENTRIES = 256


def _canonical(text: str) -> str:
    return str(parse_network(text))


#: A CIDR or a single address, validated and written canonically.
Cidr = Annotated[str, AfterValidator(_canonical)]


class IpSettings(StrictModel):
    """``[access.ip]``: which client addresses may obtain licenses."""

    allow: list[Cidr] = Field(default_factory=list)
    """Networks allowed (none: every address not denied)."""
    deny: list[Cidr] = Field(default_factory=list)
    """Networks refused, whatever ``allow`` says."""
    allow_file: ConfigPath | None = None
    """A file with more allowed networks, one per line (``#`` comments)."""
    deny_file: ConfigPath | None = None
    """A file with more refused networks, one per line."""
    claim: str | None = "allowed_ip_addresses"
    """A token claim (an address, a CIDR, or a list of them) that narrows the lists for
    that token; empty to ignore such claims."""


class IpLists:
    """A compiled allow list and deny list."""

    __slots__ = ("allow", "deny")

    def __init__(self, allow: CidrSet, deny: CidrSet) -> None:
        self.allow = allow
        self.deny = deny

    def __bool__(self) -> bool:
        return bool(self.allow or self.deny)

    def refusal(self, ip: AddressKey | None) -> str | None:
        """Why ``ip`` is refused, or None when the lists admit it."""
        if ip is None:
            return "the client's address is unknown"
        if self.deny.contains_key(ip):
            return "the client's address is on the deny list"
        if self.allow and not self.allow.contains_key(ip):
            return "the client's address is not on the allow list"
        return None


@lru_cache(maxsize=1024)
def _claim_set(entries: tuple[str, ...]) -> CidrSet | None:
    try:
        return CidrSet(entries)
    except ValueError:
        return None


def claim_networks(value: Any) -> CidrSet | None:
    """The networks an address claim lists, or None when it is unreadable (refused)."""
    entries = as_list(value)
    if len(entries) > MAX_CLAIM_ENTRIES or not all(isinstance(e, str) for e in entries):
        return None
    return _claim_set(tuple(entries))


_DENIALS = ACCESS_DENIALS.labels(RULE, Reason.IP_NOT_ALLOWED.value)


def _deny(detail: str, *, policy: str | None = None) -> ProxyError:
    _DENIALS.inc()
    metadata = {"policy": policy} if policy else None
    return ProxyError(Reason.IP_NOT_ALLOWED, detail, metadata=metadata)


class IpRule:
    """Allows or refuses requests by client address."""

    order = 10
    """Within the ``tryfirst`` tier of ``proxy_authorize``: a CIDR lookup: the cheapest check, first (docs/hooks.md, Order)."""

    def __init__(self) -> None:
        self.lists = IpLists(CidrSet(), CidrSet())
        self.claim: str | None = "allowed_ip_addresses"
        self._policy_lists: dict[int, tuple[PolicyAccess, IpLists]] = {}

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Read ``[access.ip]`` and compile its lists (files included) once."""
        settings = config.section("access.ip", IpSettings)
        if settings is None:
            return
        allow: list[Any] = list(settings.allow)
        deny: list[Any] = list(settings.deny)
        for name, path, target in (
            ("allow_file", settings.allow_file, allow),
            ("deny_file", settings.deny_file, deny),
        ):
            if path is None:
                continue
            full = path
            try:
                target.extend(read_network_file(str(full)))
            except OSError as exc:
                config.error(f"access.ip.{name}", f"cannot read {full}: {exc.strerror}")
            except ValueError as exc:
                config.error(f"access.ip.{name}", f"{full}: {exc}")
        self.lists = IpLists(CidrSet(allow), CidrSet(deny))
        self.claim = settings.claim or None

    @hookimpl(tryfirst=True)
    def proxy_authorize(self, ctx: RequestContext, principal: Principal) -> None:
        """Refuse a client the configured lists or the token's address claim don't admit."""
        claimed = principal.claims.get(self.claim) if self.claim else None
        if not self.lists and claimed is None:
            return
        ip = address_key(ctx.request.client.ip_address)
        refusal = self.lists.refusal(ip)
        if refusal is not None:
            raise _deny(refusal)
        if claimed is not None:
            networks = claim_networks(claimed)
            if networks is None:
                raise _deny(f"the token's {self.claim} claim is unreadable")
            if not networks.contains_key(ip):
                raise _deny("the token is not valid from the client's address")
        ctx.note("client address admitted")

    def _lists_for(self, access: PolicyAccess) -> IpLists:
        cached = self._policy_lists.get(id(access))
        if cached is not None and cached[0] is access:
            return cached[1]
        if len(self._policy_lists) >= 1024:
            self._policy_lists.clear()
        lists = IpLists(CidrSet(access.ip_allow), CidrSet(access.ip_deny))
        self._policy_lists[id(access)] = (access, lists)
        return lists

    @hookimpl
    def proxy_authorize_policy(
        self, ctx: RequestContext, principal: Principal, policy: EffectivePolicy
    ) -> None:
        """Apply the elected policy's address lists."""
        access = getattr(policy.policy, "access", None)
        if access is None or not (access.ip_allow or access.ip_deny):
            return None
        refusal = self._lists_for(access).refusal(address_key(ctx.request.client.ip_address))
        if refusal is not None:
            raise _deny(f"{refusal} of policy {policy.name!r}", policy=policy.name)
        ctx.note(f"client address admitted by policy {policy.name!r}")
        return None
