"""The proto's promises to client teams, held against what the proxy serves.

- every ``google.api.http`` annotation is a route of the HTTP bridge that takes the
  method's request as its body and answers the method's response, and the bridge has
  no JSON route the annotations leave out;
- ``google.api.field_behavior`` and the language options are set;
- the service config docs/api.md recommends loads into a real channel and retries.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.api import annotations_pb2, field_behavior_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor

from licenseproxy.v1 import license_proxy_pb2 as pb
from licenseproxy.v1 import license_proxy_pb2_grpc as pb_grpc
from proxy import ProxyError, Reason, hookimpl
from proxy.testing import proxy_config
from tests.access_support import KID
from tests.conftest import clearkey_request

ROOT = Path(__file__).resolve().parent.parent
SERVICE = pb.DESCRIPTOR.services_by_name["LicenseProxyService"]
#: The bridge's routes that are no gRPC method: the raw player route and the probes.
NOT_METHODS = {"/v1/licenses/{drm}", "/v1/certificates/{drm}", "/healthz", "/readyz", "/metrics"}
#: The field each request cannot go without.
REQUIRED = {
    "AcquireLicenseRequest": "challenge",
    "InspectChallengeRequest": "challenge",
    "GetCertificateRequest": "drm_system",
}


def http_rule(method: MethodDescriptor) -> Any:
    return method.GetOptions().Extensions[annotations_pb2.http]


def behaviors(field: FieldDescriptor) -> list[int]:
    return list(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])


def annotated_routes() -> dict[tuple[str, str], MethodDescriptor]:
    routes = {}
    for method in SERVICE.methods:
        rule = http_rule(method)
        verb = rule.WhichOneof("pattern")
        assert verb is not None, f"{method.name} has no google.api.http annotation"
        routes[(verb.upper(), getattr(rule, verb))] = method
    return routes


def test_every_method_is_annotated_with_a_post_of_the_whole_request():
    routes = annotated_routes()
    assert set(routes) == {
        ("POST", "/v1/license:acquire"),
        ("POST", "/v1/challenge:inspect"),
        ("POST", "/v1/certificate:get"),
    }
    for method in SERVICE.methods:
        assert http_rule(method).body == "*", method.name
        assert not http_rule(method).additional_bindings


async def test_the_bridge_serves_exactly_the_annotated_routes(
    proxy_factory, http, dev_token, tmp_path
):
    certificate = tmp_path / "fps.der"
    certificate.write_bytes(fairplay_certificate())
    fairplay = {"challenge": {"fairplay": {"application_certificate": f"file:{certificate}"}}}
    proxy = await proxy_factory(proxy_config(fairplay))
    app = proxy.app.runner.app
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method not in ("HEAD", "OPTIONS")
        and route.resource is not None
        and route.resource.canonical not in NOT_METHODS
    }
    routes = annotated_routes()
    assert served == set(routes)

    requests = {
        "AcquireLicense": pb.AcquireLicenseRequest(
            drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID), token=dev_token()
        ),
        "InspectChallenge": pb.InspectChallengeRequest(challenge=clearkey_request(KID)),
        "GetCertificate": pb.GetCertificateRequest(drm_system=pb.DRM_SYSTEM_FAIRPLAY),
    }
    for (verb, path), method in routes.items():
        message = requests[method.name]
        assert message.DESCRIPTOR is method.input_type
        body = json_format.MessageToJson(message)
        async with http.request(
            verb, f"{proxy.http_url}{path}", data=body, headers={"Content-Type": "application/json"}
        ) as answer:
            assert answer.status == 200, await answer.text()
            text = await answer.text()
        # the answer is the method's response type, nothing more (unknown fields refused)
        response = json_format.Parse(text, method.output_type._concrete_class())
        grpc_response = await getattr(proxy.stub(), method.name)(message)
        assert type(response) is type(grpc_response)
        assert response.request_id and grpc_response.request_id != response.request_id
        if method.name == "AcquireLicense":
            assert response.license == grpc_response.license != b""


def test_field_behaviors_say_what_is_required_and_what_only_the_server_writes():
    required = field_behavior_pb2.REQUIRED
    output_only = field_behavior_pb2.OUTPUT_ONLY
    for method in SERVICE.methods:
        request, response = method.input_type, method.output_type
        assert behaviors(request.fields_by_name[REQUIRED[request.name]]) == [required]
        for field in request.fields:
            if field.name != REQUIRED[request.name]:
                assert behaviors(field) == [], f"{request.name}.{field.name}"
        for field in response.fields:
            assert behaviors(field) == [output_only], f"{response.name}.{field.name}"


def fairplay_certificate() -> bytes:
    """A self-signed stand-in for a FairPlay application certificate (DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fps test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def test_the_language_options_let_stubs_generate_without_flags():
    options = pb.DESCRIPTOR.GetOptions()
    assert options.go_package.endswith(";licenseproxyv1")
    assert options.java_package.endswith(".licenseproxy.v1") and options.java_multiple_files
    assert options.csharp_namespace == "LicenseProxy.V1"


def test_the_protos_import_no_googleapis_file_kept_in_this_repository():
    kept = {p.relative_to(ROOT / "protos").as_posix() for p in (ROOT / "protos").rglob("*.proto")}
    assert not any(name.startswith("google/") for name in kept)
    imports = re.findall(
        r'^import "([^"]+)";',
        (ROOT / "protos/licenseproxy/v1/license_proxy.proto").read_text(),
        re.M,
    )
    assert set(imports) == {
        "google/api/annotations.proto",
        "google/api/field_behavior.proto",
        "google/protobuf/struct.proto",
    }


# -- the recommended service config ----------------------------------------------------


def recommended_service_config() -> str:
    """The JSON block under "Recommended service config" in docs/api.md, as written."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = text.split("## Recommended service config", 1)[1]
    match = re.search(r"```json\n(.*?)```", section, re.S)
    assert match, "docs/api.md has no service config block"
    return match.group(1)


class FailsFirst:
    """Refuses the first ``count`` license requests with ``reason``, then lets all through."""

    def __init__(self, reason: Reason, count: int = 1) -> None:
        self.reason = reason
        self.count = count
        self.calls = 0

    @hookimpl(tryfirst=True)
    def proxy_authorize(self, ctx: Any, principal: Any) -> None:
        self.calls += 1
        if self.calls <= self.count:
            raise ProxyError(self.reason, "briefly down", retry_after=0.05)


async def _channel_call(proxy: Any, config: str, token: str) -> Any:
    options = [("grpc.service_config", config), ("grpc.enable_retries", 1)]
    async with grpc.aio.insecure_channel(proxy.grpc_target, options=options) as channel:
        stub = pb_grpc.LicenseProxyServiceStub(channel)
        return await stub.AcquireLicense(
            pb.AcquireLicenseRequest(
                drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID), token=token
            )
        )


def test_the_recommended_service_config_is_what_grpc_reads():
    config = json.loads(recommended_service_config())
    names = {n["method"] for entry in config["methodConfig"] for n in entry["name"]}
    assert names == {m.name for m in SERVICE.methods}
    for entry in config["methodConfig"]:
        assert entry["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


async def test_a_channel_with_the_recommended_config_retries_unavailable(proxy_factory, dev_token):
    failing = FailsFirst(Reason.DEPENDENCY_UNAVAILABLE)
    proxy = await proxy_factory(plugins=[failing])
    answer = await _channel_call(proxy, recommended_service_config(), dev_token())
    assert answer.license and failing.calls == 2


async def test_the_recommended_config_gives_up_after_three_attempts(proxy_factory, dev_token):
    failing = FailsFirst(Reason.STATE_UNAVAILABLE, count=5)
    proxy = await proxy_factory(plugins=[failing])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _channel_call(proxy, recommended_service_config(), dev_token())
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert failing.calls == 3


async def test_the_recommended_config_leaves_limits_to_the_application(proxy_factory, dev_token):
    failing = FailsFirst(Reason.RATE_LIMITED)
    proxy = await proxy_factory(plugins=[failing])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _channel_call(proxy, recommended_service_config(), dev_token())
    assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert failing.calls == 1


def test_the_http_bridge_mapping_in_the_docs_matches_the_annotations():
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for (verb, path), method in annotated_routes().items():
        assert f"| `{method.name}` | `{verb} {path}`" in text
