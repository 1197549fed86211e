"""Policy configuration: errors with key paths, check-config warnings, the catalog, and
``license-proxy explain``."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from proxy.builder import build_pipeline
from proxy.cli import main
from proxy.errors import ConfigError
from proxy.explain import SyntheticInspector
from proxy.model import DrmSystem, LicenseRequest
from proxy.policy import TrackType
from proxy.testing import proxy_config
from tests.conftest import clearkey_request

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
HD_KID = uuid.UUID("bda0d55c-ad24-2211-faa2-25a5d6d8144a").bytes


def with_policies(*policies: dict[str, Any], **sections: Any) -> dict[str, Any]:
    for policy in policies:
        policy.setdefault("backends", ["clearkey"])
    return proxy_config({"policies": list(policies), **sections})


def errors_of(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config)
    return dict(raised.value.errors)


def warnings_of(config: dict[str, Any]) -> dict[str, str]:
    return dict(build_pipeline(config).warnings)


@pytest.mark.parametrize(
    ("policies", "sections", "path", "message"),
    [
        ([{"name": "a"}, {"name": "a"}], {}, "policies[1].name", "defined twice"),
        ([{"name": "a", "backends": []}], {}, "policies[0].backends", "at least one backend"),
        (
            [{"name": "a", "backends": ["nowhere"]}],
            {},
            "policies[0].backends[0]",
            "no backend named",
        ),
        (
            [{"name": "a", "tracks": {"HD": {"hdcp": "HDCP_V7"}}}],
            {},
            "policies[0].tracks.HD.hdcp",
            "",
        ),
        ([{"name": "a", "licence": {}}], {}, "policies[0].licence", "unknown key"),
        ([{"name": "bad name"}], {}, "policies[0].name", "pattern"),
        (
            [{"name": "a"}],
            {"policy_election": {"name_clam": "x"}},
            "policy_election.name_clam",
            "unknown key",
        ),
        (
            [{"name": "a"}],
            {"catalog": {"contents": {"m": {"not-a-key": "HD"}}}},
            "catalog.contents.m.not-a-key",
            "not a key id",
        ),
        (
            [{"name": "a"}],
            {"catalog": {"contents": {"m": {str(uuid.UUID(bytes=KID)): "FHD"}}}},
            f"catalog.contents.m.{uuid.UUID(bytes=KID)}",
            "",
        ),
        (
            [{"name": "a"}],
            {
                "catalog": {
                    "contents": {
                        "m1": {str(uuid.UUID(bytes=KID)): "SD"},
                        "m2": {KID.hex(): "HD"},
                    }
                }
            },
            f"catalog.contents.m2.{KID.hex()}",
            "is HD here but SD elsewhere",
        ),
        ([{"name": "a"}], {"catalog": {"file": "missing.json"}}, "catalog.file", "cannot read"),
    ],
)
def test_policy_config_errors_name_their_key_path(policies, sections, path, message):
    errors = errors_of(with_policies(*policies, **sections))
    assert path in errors, errors
    assert message in errors[path]


def test_policies_must_be_an_array():
    assert "policies" in errors_of(proxy_config({"policies": {"name": "x"}}))


@pytest.mark.parametrize(
    ("policies", "path", "message"),
    [
        (
            [
                {"name": "all"},
                {"name": "gold", "match": {"claims": {"tier": "gold"}}, "priority": -1},
            ],
            "policies[1]",
            "policy 'gold' can never win an election: policies[0] ('all')",
        ),
        (
            [
                {"name": "broad", "match": {"claims": {"tier": ["gold", "silver"]}}, "priority": 2},
                {"name": "gold", "match": {"claims": {"tier": "gold", "region": "eu"}}},
            ],
            "policies[1]",
            "can never win",
        ),
        (
            [
                {"name": "a", "match": {"claims": {"tier": "gold"}, "content_ids": ["movies/*"]}},
                {"name": "b", "match": {"claims": {"tier": "gold"}, "content_ids": ["movies/*"]}},
            ],
            "policies[1]",
            "can never win",
        ),
        (
            [
                {"name": "present", "match": {"claims": {"sub": {"present": True}}}, "priority": 1},
                {"name": "one", "match": {"claims": {"sub": "alice"}}},
            ],
            "policies[1]",
            "can never win",
        ),
        (
            [
                {"name": "wide", "match": {"content_ids": ["movies/*"]}, "priority": 1},
                {"name": "narrow", "match": {"content_ids": ["movies/42"]}},
            ],
            "policies[1]",
            "can never win",
        ),
        (
            [{"name": "e", "match": {"claims": {"tier": []}}}],
            "policies[0].match.claims.tier",
            "never elected",
        ),
        (
            [{"name": "e", "match": {"drm_systems": []}}],
            "policies[0].match.drm_systems",
            "never elected",
        ),
        (
            [{"name": "wv", "match": {"drm_systems": ["clearkey", "widevine"]}}],
            "policies[0].match.drm_systems[1]",
            "no backend of policy 'wv' serves widevine",
        ),
        (
            [{"name": "o", "license_overrides": {"fairplay": {"persistent": False}}}],
            "policies[0].license_overrides.fairplay",
            "never applies",
        ),
        (
            [{"name": "t", "allowed_track_types": ["SD"], "tracks": {"HD": {"hdcp": "HDCP_V2"}}}],
            "policies[0].tracks.HD",
            "not in allowed_track_types",
        ),
        (
            [{"name": "r", "license": {"renewal": {"enabled": False, "delay": 30}}}],
            "policies[0].license.renewal",
            "delay will be ignored",
        ),
    ],
)
def test_check_config_warns_about_policies_that_can_never_apply(policies, path, message):
    warnings = warnings_of(with_policies(*policies))
    assert path in warnings, warnings
    assert message in warnings[path]


@pytest.mark.parametrize(
    "policies",
    [
        [{"name": "gold", "match": {"claims": {"tier": "gold"}}}, {"name": "all", "priority": -1}],
        [
            {"name": "gold", "match": {"claims": {"tier": "gold"}}},
            {"name": "eu", "match": {"claims": {"region": "eu"}}},
        ],
        [
            {"name": "one", "match": {"claims": {"tier": "gold"}}},
            {"name": "two", "match": {"claims": {"tier": ["gold", "silver"]}}},
        ],
        [
            {"name": "glob", "match": {"content_ids": ["movies/*"]}, "priority": 1},
            {"name": "other-glob", "match": {"content_ids": ["movies/4*"]}},
        ],
        [
            {"name": "absent", "match": {"claims": {"sub": {"present": False}}}},
            {"name": "p", "match": {"claims": {"sub": "x"}}},
        ],
    ],
)
def test_no_warning_for_policies_that_can_be_elected(policies):
    assert warnings_of(with_policies(*policies)) == {}


def test_the_shadow_warning_says_whether_a_token_can_still_name_the_policy():
    policies = [{"name": "all", "priority": 1}, {"name": "gold"}]
    named = warnings_of(with_policies(*[dict(p) for p in policies]))["policies[1]"]
    assert "only a token naming it in its 'policy_name' claim can elect it" in named
    off = with_policies(*[dict(p) for p in policies], policy_election={"name_claim": ""})
    assert "naming" not in warnings_of(off)["policies[1]"]


def test_no_policy_at_all_is_a_warning():
    config = proxy_config()
    config["policies"] = []
    assert "policies" in warnings_of(config)


def test_check_config_prints_the_warnings(tmp_path, capsys):
    path = tmp_path / "proxy.toml"
    path.write_text(
        """
[[auth.issuers]]
issuer = "https://sts.example"
audiences = ["license-proxy"]
algorithms = ["HS256"]
[[auth.issuers.keys]]
secret = "hex:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

[[policies]]
name = "everyone"
backend = "clearkey"
priority = 1

[[policies]]
name = "gold"
backend = "clearkey"
match.claims.tier = "gold"

[backends.clearkey]
vendor = "clearkey"
key_seed = "hex:00112233445566778899aabbccddeeff"
"""
    )
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: policies[1]: policy 'gold' can never win an election" in out


# -- the catalog ---------------------------------------------------------------------------


async def _key_types(config: dict[str, Any], key_ids=(), content_id=None, base_dir=None):
    inspector = SyntheticInspector(DrmSystem.WIDEVINE, key_ids, content_id)
    pipeline = build_pipeline(config, plugins=[("synthetic", inspector)], base_dir=base_dir)
    from proxy.testing import development_token as _dev_token

    result = await pipeline.acquire(
        LicenseRequest(challenge=b"x", token=_dev_token(), request_id="t", dry_run=True)
    )
    return result.effective_policy["key_track_types"]


@pytest.mark.parametrize("suffix", [".json", ".toml"])
async def test_the_catalog_file_and_inline_contents_type_keys(tmp_path: Path, suffix):
    hd = str(uuid.UUID(bytes=HD_KID))
    if suffix == ".json":
        text = json.dumps({"contents": {"movie-2": {hd: "HD"}}})
    else:
        text = f'[contents."movie-2"]\n"{hd}" = "hd"\n'
    (tmp_path / f"catalog{suffix}").write_text(text)
    config = with_policies(
        {"name": "p"},
        catalog={"file": f"catalog{suffix}", "contents": {"movie-1": {KID.hex(): "audio"}}},
    )
    types = await _key_types(config, (KID, HD_KID, b"\x09" * 16), base_dir=tmp_path)
    assert types == {str(uuid.UUID(bytes=KID)): "AUDIO", hd: "HD"}
    # no key ids in the request: the content's keys
    assert await _key_types(config, (), "movie-2", base_dir=tmp_path) == {hd: "HD"}
    assert await _key_types(config, (), "movie-9", base_dir=tmp_path) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON or TOML"),
        ('{"movie": {}}', 'expected {"contents"'),
        ('{"contents": {"m": {"4060a865-8878-4267-9cbf-91ae5bae1e72": "8K"}}}', ""),
    ],
)
def test_a_bad_catalog_file_fails_the_start(tmp_path: Path, text, message):
    (tmp_path / "catalog.json").write_text(text)
    config = with_policies({"name": "p"}, catalog={"file": "catalog.json"})
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config, base_dir=tmp_path)
    [(path, detail)] = [e for e in raised.value.errors if e[0].startswith("catalog")]
    assert path.startswith("catalog.file")
    assert message in detail


def test_a_large_catalog_is_a_dictionary_lookup():
    from plugins.policy.catalog import KeyCatalog

    catalog = KeyCatalog()
    for i in range(10_000):
        key = i.to_bytes(16, "big")
        catalog.by_key[key] = TrackType.HD
        catalog.by_content.setdefault(f"m{i // 4}", {})[key] = TrackType.HD
    assert catalog.track_types([(42).to_bytes(16, "big")], None) == {
        (42).to_bytes(16, "big"): TrackType.HD
    }
    assert len(catalog.track_types([], "m3")) == 4


# -- license-proxy explain -------------------------------------------------------------------


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "proxy.toml"
    path.write_text(
        """
[[auth.issuers]]
issuer = "license-proxy-dev"
audiences = ["license-proxy"]
algorithms = ["HS256"]
[[auth.issuers.keys]]
id = "dev-hs256"
secret = "hex:5d6dbb66b826ed52d9e8408b808784a86f6c994ab0ab5ef45f2b920fcfebdd85"

[[policies]]
name = "widevine-persistent"
backend = "clearkey"
match.claims.persistency = "permanent"
license.persistent = true

[[policies]]
name = "widevine-2h"
backend = "clearkey"
match.claims.persistency = "2hours"
license.license_duration = "2h"

[catalog.contents."movie-1"]
"4060a865-8878-4267-9cbf-91ae5bae1e72" = "HD"

[backends.clearkey]
vendor = "clearkey"
key_seed = "hex:00112233445566778899aabbccddeeff"
"""
    )
    return path


def test_explain_prints_the_trace_and_the_elected_policy(tmp_path, capsys, dev_token):
    config = write_config(tmp_path)
    token = dev_token({"persistency": "2hours"})
    code = main(
        [
            "explain",
            "--config",
            str(config),
            "--token",
            token,
            "--drm",
            "widevine",
            "--content-id",
            "movie-1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "1. proxy_inspect_challenge [explain] -> widevine:new" in out
    assert "proxy_select_policy [policy] -> policy:widevine-2h" in out
    assert "'widevine-persistent' is not a candidate: claim persistency is '2hours'" in out
    assert "key 4060a865-8878-4267-9cbf-91ae5bae1e72: HD" in out
    assert "elected policy 'widevine-2h', served by backend 'clearkey'" in out
    assert "warning: no selected backend (clearkey) serves widevine" in out
    assert '"license_duration": 7200' in out
    assert token not in out


def test_explain_shows_a_refusal_and_exits_non_zero(tmp_path, capsys, dev_token):
    config = write_config(tmp_path)
    code = main(
        [
            "explain",
            "--config",
            str(config),
            "--token",
            dev_token({"persistency": "x"}),
            "--drm",
            "clearkey",
            "--key-id",
            "QGCoZYh4Qmecv5GuW64ecg",
            "--json",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["error"]["reason"] == "NO_MATCHING_POLICY"
    assert doc["request"]["key_ids"] == ["4060a865-8878-4267-9cbf-91ae5bae1e72"]
    [step] = [s for s in doc["trace"] if s["hook"] == "proxy_select_policy"]
    assert step["verdict"] == "no opinion"
    assert "no policy's conditions all hold" in step["reasons"]


def test_explain_reads_a_real_challenge_and_the_token_from_stdin(
    tmp_path, capsys, monkeypatch, dev_token
):
    config = write_config(tmp_path)
    challenge = tmp_path / "challenge.json"
    challenge.write_bytes(clearkey_request(KID))
    monkeypatch.setattr("sys.stdin", io.StringIO(dev_token({"persistency": "permanent"}) + "\n"))
    code = main(
        [
            "explain",
            "--config",
            str(config),
            "--token",
            "-",
            "--drm",
            "clearkey",
            "--challenge",
            str(challenge),
            "--json",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    [inspected] = [s for s in doc["trace"] if s["verdict"] == "clearkey:new"]
    assert inspected["plugin"] == "challenge_clearkey"
    assert doc["result"]["policy"] == "widevine-persistent"
    assert doc["result"]["effective_policy"]["key_track_types"] == {
        "4060a865-8878-4267-9cbf-91ae5bae1e72": "HD"
    }
    assert "warnings" not in doc


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--key-id", "nope"], "--key-id"),
        (["--challenge", "/nonexistent/challenge"], "--challenge: cannot read"),
    ],
)
def test_explain_refuses_bad_arguments(tmp_path, capsys, args, message, dev_token):
    config = write_config(tmp_path)
    code = main(
        ["explain", "--config", str(config), "--token", dev_token(), "--drm", "clearkey", *args]
    )
    assert code == 2
    assert message in capsys.readouterr().err


def test_explain_reports_config_errors(tmp_path, capsys, dev_token):
    path = tmp_path / "bad.toml"
    path.write_text('[[policies]]\nname = "x"\nbackend = "nowhere"\n')
    assert (
        main(["explain", "--config", str(path), "--token", dev_token(), "--drm", "clearkey"]) == 2
    )
    assert "policies[0].backends[0]" in capsys.readouterr().err
