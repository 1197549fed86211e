"""bench.sidebyside's pieces that decide what its figures mean: the gRPC request h2load
sends, the load generators' counts, and the check that every measured request got a
license. No load is run here (speed figures live in bench/)."""

from __future__ import annotations

import struct

import jwt
import pytest

from bench import loadgen
from bench.sidebyside import verify
from bench.sidebyside_paths import BY_KEY, DEVICE, Material, grpc_request
from licenseproxy.v1 import license_proxy_pb2 as pb


@pytest.fixture(scope="module")
def material() -> Material:
    return Material.make()


@pytest.mark.parametrize("key", ["vendor-grpc", "playready-grpc", "default-grpc", "bare-grpc"])
def test_the_grpc_data_file_is_one_length_prefixed_request(material: Material, key: str) -> None:
    spec = BY_KEY[key]
    request = grpc_request(spec, material)
    frame = loadgen.grpc_frame(request.SerializeToString())
    # gRPC over HTTP/2: a compressed flag byte, a 4-byte big-endian length, the message.
    compressed, length = struct.unpack(">BI", frame[:5])
    assert compressed == 0
    assert length == len(frame) - 5
    decoded = pb.AcquireLicenseRequest.FromString(frame[5:])
    assert decoded == request
    assert decoded.challenge == material.challenges[spec.drm]
    drms = {
        "widevine": pb.DRM_SYSTEM_WIDEVINE,
        "playready": pb.DRM_SYSTEM_PLAYREADY,
        "clearkey": pb.DRM_SYSTEM_CLEARKEY,
    }
    assert decoded.drm_system == drms[spec.drm]
    expected_token = {"vendor": material.vendor_token, "default": material.default_token}
    assert decoded.token == expected_token.get(spec.server, "")
    assert loadgen.grpc_unframe(frame) == request.SerializeToString()


def test_the_vendor_token_carries_what_the_full_path_checks(material: Material) -> None:
    claims = jwt.decode(
        material.vendor_token,
        material.signing_key.public_key(),
        algorithms=["RS256"],
        audience="license-proxy",
    )
    assert claims["vendor"] == "axinom"
    assert claims["device"] == DEVICE
    assert jwt.get_unverified_header(material.vendor_token)["alg"] == "RS256"


def test_a_truncated_frame_is_refused() -> None:
    frame = loadgen.grpc_frame(b"abc")
    with pytest.raises(ValueError):
        loadgen.grpc_unframe(frame[:-1])


WRK = """Running 8s test @ http://127.0.0.1:1/v1/licenses/widevine
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.10ms    2.00ms  40.00ms   80.00%
    Req/Sec     1.70k   100.00     1.90k    70.00%
  Latency Distribution
     50%    8.50ms
     75%    9.90ms
     90%   11.00ms
     99%    1.20s
  13600 requests in 8.00s, 5.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 40
Requests/sec:   1700.00
Transfer/sec:    640.00KB
"""


def test_wrk_output_counts_non_2xx_and_socket_errors_as_failed() -> None:
    load = loadgen.parse_wrk(WRK)
    assert load.ok == 13600 - 40
    assert load.failed == 40 + 3
    assert load.seconds == 8.0
    assert load.p50_ms == 8.5
    assert load.p99_ms == 1200.0
    assert load.rps == pytest.approx((13600 - 40) / 8)


H2LOAD = """finished in 8.00s, 1200.00 req/s, 300KB/s
requests: 9605 total, 9621 started, 9605 done, 9600 succeeded, 3 failed, 2 errored, 0 timeout
status codes: 9600 2xx, 0 3xx, 3 4xx, 0 5xx
"""


def test_h2load_percentiles_come_from_the_2xx_lines_of_its_log() -> None:
    log = "".join(f"17000000{i:08d}\t200\t{1000 * (i + 1)}\n" for i in range(100))
    log += "1700000000000000\t503\t999999999\n"
    load = loadgen.parse_h2load(H2LOAD, log)
    assert (load.ok, load.failed) == (9600, 5)
    assert load.p50_ms == pytest.approx(50.5)
    assert load.p99_ms == pytest.approx(99.01)


def _counts(issued: float, **others: float) -> dict[tuple[str, str, str, str], float]:
    found = {("grpc", "widevine", "issued", ""): issued, ("http", "widevine", "issued", ""): 5.0}
    for outcome, value in others.items():
        reason = "TOKEN_EXPIRED" if outcome == "denied" else ""
        found[("grpc", "widevine", outcome, reason)] = value
    return found


def _load(ok: int) -> loadgen.Load:
    return loadgen.Load(ok=ok, failed=0, seconds=1.0, p50_ms=1.0, p99_ms=2.0, cpu=0.0)


def test_a_grpc_error_that_h2load_took_for_success_is_a_failure() -> None:
    spec = BY_KEY["vendor-grpc"]
    before = _counts(100.0)
    after = _counts(190.0, denied=10.0)
    issued, refused, problems = verify(spec, _load(100), before, after, connections=16)
    assert issued == 90
    assert refused == 10
    assert problems == [
        "10 denied (TOKEN_EXPIRED)",
        "the proxy counted 90 licenses issued for 100 2xx answers",
    ]


def test_requests_cut_when_the_load_stops_are_no_failure() -> None:
    spec = BY_KEY["vendor-grpc"]
    issued, refused, problems = verify(
        spec, _load(100), _counts(0.0), _counts(112.0, cancelled=4.0), connections=16
    )
    assert (issued, refused, problems) == (112, 0, [])


def test_unreadable_counters_leave_the_answers_unverified() -> None:
    issued, refused, problems = verify(BY_KEY["default-http"], _load(10), None, {}, 16)
    assert (issued, refused) == (None, 0)
    assert problems and "unverified" in problems[0]
