"""``license-proxy explain``: run one request as a dry run, in-process, and show every decision.

The pipeline is built from the operator's config exactly as ``serve`` builds
it, plus two helper plugins: a stand-in inspector that supplies a synthetic
challenge for the DRM when no ``--challenge`` file is given, and an observer
that keeps the request's context so that the trace of a denied request can be
shown too. No vendor is called.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy import hookimpl
from proxy.errors import ProxyError
from proxy.model import (
    ChallengeInfo,
    ClientInfo,
    DecisionStep,
    DrmSystem,
    LicenseRequest,
    LicenseResult,
    RequestContext,
    RequestType,
    key_id_uuid,
)
from proxy.pipeline import Pipeline

#: What the request carries as its challenge when the synthetic inspector stands in.
SYNTHETIC_CHALLENGE = b"license-proxy explain: synthetic challenge"


class SyntheticInspector:
    """Answers ``proxy_inspect_challenge`` with the DRM, key ids and content id given on the
    command line; registered only when no challenge file was given. Tests use it too, to
    stand in for DRMs whose inspector is not loaded."""

    def __init__(self, drm: DrmSystem, key_ids: Sequence[bytes], content_id: str | None) -> None:
        self.drm = drm
        self.key_ids = tuple(key_ids)
        self.content_id = content_id

    @hookimpl(tryfirst=True)
    def proxy_inspect_challenge(self, ctx: RequestContext) -> ChallengeInfo:
        """A synthetic license request for the DRM."""
        ctx.note("synthetic challenge: no --challenge file was given")
        return ChallengeInfo(
            drm_system=self.drm,
            request_type=RequestType.NEW,
            payload=b"",
            key_ids=self.key_ids,
            content_id=self.content_id,
        )


@dataclass
class ContextKeeper:
    """Keeps the context of the request it observes, issued or denied."""

    ctx: RequestContext | None = None

    @hookimpl
    def proxy_license_issued(self, ctx: RequestContext, result: LicenseResult) -> None:
        """Keep the context of the dry run."""
        self.ctx = ctx

    @hookimpl
    def proxy_license_denied(self, ctx: RequestContext, error: ProxyError) -> None:
        """Keep the context of the denied request, for its trace."""
        self.ctx = ctx


@dataclass
class Explanation:
    """What a dry run decided: the trace, and the result or the error."""

    request: LicenseRequest
    trace: list[DecisionStep] = field(default_factory=list)
    result: LicenseResult | None = None
    error: ProxyError | None = None
    warnings: list[str] = field(default_factory=list)
    """Facts the dry run can't act on but a real request would meet (a backend that
    does not serve the DRM)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe view (``--json``)."""
        view: dict[str, Any] = {
            "request": {
                "drm_system": self.request.drm_system.value if self.request.drm_system else None,
                "content_id": self.request.content_id,
                "key_ids": [key_id_uuid(k) for k in self.request.key_ids],
            },
            "trace": [
                {"hook": s.hook, "plugin": s.plugin, "verdict": s.verdict, "reasons": s.reasons}
                for s in self.trace
            ],
        }
        if self.result is not None:
            view["result"] = {
                "policy": self.result.policy,
                "backend": self.result.backend,
                "vendor": self.result.vendor,
                "request_type": self.result.request_type.value,
                "effective_policy": self.result.effective_policy,
            }
        if self.error is not None:
            view["error"] = {"reason": self.error.reason.value, "detail": self.error.detail}
        if self.warnings:
            view["warnings"] = list(self.warnings)
        return view

    def render(self) -> str:
        """The explanation as text for an operator."""
        request = self.request
        drm = request.drm_system.value if request.drm_system else "undetected DRM"
        lines = [
            f"request: {drm}, content id {request.content_id or '-'}, "
            f"{len(request.key_ids)} key id(s) given",
            "decisions:",
        ]
        if not self.trace:
            lines.append("  (none: the request stopped before the first hook)")
        for number, step in enumerate(self.trace, 1):
            lines.append(f"  {number}. {step.hook} [{step.plugin}] -> {step.verdict or '-'}")
            lines.extend(f"       - {reason}" for reason in step.reasons)
        if self.error is not None:
            lines.append(f"denied: {self.error.reason.value}: {self.error.detail}")
        if self.result is not None:
            lines.append(
                f"elected policy {self.result.policy!r}, served by backend "
                f"{self.result.backend!r} (vendor {self.result.vendor or '-'})"
            )
            lines.extend(f"warning: {w}" for w in self.warnings)
            lines.append("effective policy:")
            text = json.dumps(self.result.effective_policy, indent=2, sort_keys=True)
            lines.extend("  " + line for line in text.splitlines())
        return "\n".join(lines)


def explanation_request(
    *,
    drm: DrmSystem,
    token: str,
    content_id: str | None = None,
    key_ids: Sequence[bytes] = (),
    challenge: bytes | None = None,
    client_ip: str | None = None,
    device_id: str | None = None,
) -> LicenseRequest:
    """The dry-run request ``explain`` sends through the pipeline."""
    return LicenseRequest(
        challenge=challenge if challenge is not None else SYNTHETIC_CHALLENGE,
        drm_system=drm,
        token=token,
        content_id=content_id,
        key_ids=tuple(key_ids),
        client=ClientInfo(ip_address=client_ip, device_id=device_id, trusted=True),
        dry_run=True,
        transport="explain",
        request_id=f"explain-{uuid.uuid4().hex[:12]}",
    )


async def explain(
    pipeline: Pipeline, keeper: ContextKeeper, request: LicenseRequest
) -> Explanation:
    """Run ``request`` (a dry run) through ``pipeline`` and collect what was decided.

    ``keeper`` must be one of the pipeline's plugins (it observes the outcome).
    """
    explanation = Explanation(request)
    async with pipeline.running():
        try:
            explanation.result = await pipeline.acquire(request)
        except ProxyError as error:
            explanation.error = error
    if keeper.ctx is not None and keeper.ctx.trace is not None:
        explanation.trace = list(keeper.ctx.trace)
    elif explanation.result is not None:
        explanation.trace = list(explanation.result.trace)
    if explanation.result is not None:
        explanation.warnings = _backend_warnings(pipeline, explanation.result, explanation.trace)
    return explanation


def _backend_warnings(
    pipeline: Pipeline, result: LicenseResult, trace: Sequence[DecisionStep]
) -> list[str]:
    """Which of the selected backends would be skipped for not serving the DRM."""
    names = [result.backend]
    for step in trace:
        if step.hook == "proxy_select_backends" and step.verdict.startswith("backends:"):
            names = step.verdict.removeprefix("backends:").split(",")
    drm = result.drm_system
    skipped = [
        n
        for n in names
        if n in pipeline.backends and drm not in pipeline.backends[n].spec.drm_systems
    ]
    if not skipped:
        return []
    if len(skipped) == len(names):
        return [
            f"no selected backend ({', '.join(names)}) serves {drm.value}: "
            "a real request would fail with DRM_NOT_SUPPORTED"
        ]
    return [f"backend {n!r} does not serve {drm.value}: a real request skips it" for n in skipped]
