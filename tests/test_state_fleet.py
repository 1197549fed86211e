"""Shared state at fleet scale: store URLs, Redis Cluster and Sentinel on real servers.

The servers are real: a 3-master cluster with a replica each and a master with
a replica behind three sentinels (``proxy.testing.fleet``), Debian's Redis and,
where installed, Valkey; each started once per session. Tests kill, pause and
reshard them while calls run.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from plugins.access.claims import slot_tag, state_key
from proxy.builder import build_pipeline
from proxy.cli import main
from proxy.errors import ConfigError
from proxy.state import (
    ClusterStore,
    RateOp,
    ScriptStore,
    SessionOp,
    StateUnavailable,
    StoreMode,
    UseOp,
    open_store,
    parse_store_url,
)
from proxy.testing import proxy_config
from proxy.testing.fleet import LocalCluster, SentinelGroup, command_calls, reset_stats
from proxy.testing.fleet.admin import admin_client, call
from proxy.testing.fleet.drill import failover_drill, subject_tag
from tests.access_support import grpc_call
from tests.session_support import VENDOR, new_license, release, renewal, sessions_config, widevine

NOW = 1_800_000_000.0
HANG_GUARD = 30.0  # an outer bound so a broken store fails the test instead of hanging it


# -- store URLs and configuration ---------------------------------------------------------


def test_store_urls_name_their_mode():
    single = parse_store_url("rediss://alice:s3cret@cache:6380/2")
    assert (single.mode, single.tls) == (StoreMode.SINGLE, True)
    assert single.redacted() == "rediss://cache:6380/2"
    cluster = parse_store_url("redis+cluster://bob:s3cret@a:7000,b,[::1]:7002")
    assert cluster.mode is StoreMode.CLUSTER and not cluster.tls
    assert cluster.nodes == (("a", 7000), ("b", 6379), ("::1", 7002))
    assert (cluster.username, cluster.password) == ("bob", "s3cret")
    assert cluster.redacted() == "redis+cluster://a:7000,b:6379,[::1]:7002"
    sentinel = parse_store_url("rediss+sentinel://s1,s2:5000/license-state/3")
    assert (sentinel.mode, sentinel.tls, sentinel.service, sentinel.db) == (
        StoreMode.SENTINEL,
        True,
        "license-state",
        3,
    )
    assert sentinel.nodes == (("s1", 26379), ("s2", 5000))
    assert "s3cret" not in repr(cluster)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://user:s3cret@cache", "redis+cluster://"),
        ("redis+cluster://:s3cret@", "at least one host"),
        ("redis+cluster://:s3cret@a:1/2", "database 0"),
        ("redis+cluster://:s3cret@a:99999", "port"),
        ("redis+sentinel://:s3cret@a:1", "service name"),
        ("redis+sentinel://:s3cret@a:1/svc?ssl=1", "no query"),
    ],
)
def test_bad_store_urls_say_why_and_never_repeat_the_url(url, says):
    with pytest.raises(ConfigError) as raised:
        build_pipeline(proxy_config({"access": {"state": {"store": url}, "replay": {}}}))
    message = dict(raised.value.errors)["access.state.store"]
    assert says in message
    assert "s3cret" not in str(raised.value)


def test_state_settings_errors_name_their_key(tmp_path):
    config = proxy_config(
        {
            "access": {
                "state": {
                    "store": "redis://cache:6379/0",
                    "key_prefix": "{all}:",
                    "tls": {"ca": "file:nowhere.pem"},
                },
                "replay": {},
            }
        }
    )
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config, base_dir=tmp_path)
    errors = dict(raised.value.errors)
    assert "hash tags" in errors["access.state.key_prefix"]
    assert "nowhere.pem" in errors["access.state.tls.ca"]
    (tmp_path / "ca.pem").write_text("not checked until a connection is made")
    config["access"]["state"] = {"store": "redis://cache:6379/0", "tls": {"ca": "file:ca.pem"}}
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config, base_dir=tmp_path)
    assert "rediss://" in dict(raised.value.errors)["access.state"]


@pytest.mark.parametrize(
    ("store", "mode"),
    [
        ("memory", "memory mode (this process only)"),
        ("redis://:s3cret@cache:6379/0", "single mode (redis://cache:6379/0)"),
        ("redis+cluster://:s3cret@a:7000,b:7001", "cluster mode (redis+cluster://a:7000,b:7001)"),
        ("rediss+sentinel://s1:26379,s2:26379/main", "sentinel mode (rediss+sentinel://s1:26379"),
    ],
)
def test_check_config_says_which_mode_it_will_use(tmp_path, capsys, store, mode):
    from importlib import resources

    text = resources.files("proxy").joinpath("default.toml").read_text()
    path = tmp_path / "proxy.toml"
    path.write_text(f'{text}\n[access.state]\nstore = "{store}"\n\n[access.replay]\n')
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"access.state: {mode}" in out
    assert "s3cret" not in out


def test_a_subjects_keys_share_a_slot_and_an_address_has_its_own():
    store = ClusterStore("redis+cluster://127.0.0.1:1", prefix="license-proxy:")
    tag = slot_tag("alice")
    ops = [
        UseOp(state_key("replay", "id", "issuer", "jti-1", tag=tag), 1, 60),
        SessionOp(state_key("sessions", "alice", tag=tag), "s", 2, 60),
        RateOp(state_key("rate:subject", "alice", tag=tag), 1, 5),
        RateOp(state_key("rate:ip", "203.0.113.9"), 1, 5),
    ]
    assert store.slot_groups(ops) == [[0, 1, 2], [3]]
    assert "alice" not in "".join(op.key for op in ops)  # digests only


# -- one round trip per slot, proved by the servers' own counters ----------------------------


@pytest.mark.parametrize("target", ["redis", "redis-cluster", "redis-sentinel"])
@pytest.mark.parametrize("per_address", [False, True], ids=["subject-rules", "with-client-ip"])
async def test_evalsha_calls_per_request_in_each_mode(
    store_target, proxy_factory, dev_token, target, per_address
):
    fleet = store_target(target)
    rate: dict = {"subject": {"requests": 1000}}
    if per_address:
        rate["client_ip"] = {"requests": 1000}
    rules = {
        "state": {"store": fleet.url, "timeout": "2s"},
        "replay": {},
        "concurrency": {"limit": 100},
        "rate_limit": rate,
    }
    proxy = await proxy_factory(proxy_config({"access": rules}))
    assert (await grpc_call(proxy, dev_token(), content_id="warm-up")).ok  # loads the scripts
    reset_stats(fleet.data_nodes)
    for i in range(10):
        assert (await grpc_call(proxy, dev_token({"sub": f"user-{i}"}), content_id=f"t{i}")).ok
    slots = 2 if per_address and target.endswith("cluster") else 1
    calls = command_calls(fleet.masters())  # a replica counts the MULTI/EXEC it is fed
    assert calls["evalsha"] == 10 * slots
    # and nothing beside it per request (the counts include the commands a script runs,
    # so only what a client sends on its own is looked at, and not the PING a sentinel
    # sends every second): no reload, no transaction, no topology query
    extra = {
        name: n
        for name, n in calls.items()
        if name.startswith(("eval", "script", "multi", "exec", "cluster")) and name != "evalsha"
    }
    assert not extra, extra


@pytest.mark.parametrize("target", ["redis", "redis-cluster", "redis-sentinel"])
async def test_round_trips_of_a_whole_viewing(
    store_target, vendor_sandbox, proxy_factory, fake_clock, dev_token, target
):
    """A Widevine viewing with every session feature on: a new license is one EVALSHA (its
    license session recorded in the same script); a renewal or release adds one MGET (its
    session looked up), after the token expired too (the token plugin's lookup is not
    repeated); a retry is one EVALSHA. One slot throughout on a cluster."""
    fleet = store_target(target)
    rules = {
        "state": {"store": fleet.url, "timeout": "2s"},
        "replay": {"retry_window": "30s"},
        "concurrency": {"limit": 100, "mode": "stop_oldest", "per_content": 10},
        "rate_limit": {"subject": {"requests": 1000}},
    }
    config = sessions_config(vendor_sandbox, rules.pop("state"), access=rules)
    proxy = await proxy_factory(config, clock=fake_clock)

    def token() -> str:
        return dev_token({"sub": "viewer", "vendor": VENDOR}, ttl=90, now=fake_clock.time())

    assert (await widevine(proxy, token(), new_license(b"warm-up"))).ok  # loads the scripts
    started = token()

    async def calls(challenge: bytes, used: str | None = None) -> dict[str, int]:
        reset_stats(fleet.data_nodes)
        assert (await widevine(proxy, used or token(), challenge)).ok
        found = command_calls(fleet.masters())
        return {name: found.get(name, 0) for name in ("evalsha", "mget")} | {
            "other": sum(
                n
                for name, n in found.items()
                if name.startswith(("eval", "script", "multi", "exec", "cluster"))
                and name != "evalsha"
            )
        }

    new = await calls(new_license(b"cdm-1"), started)
    assert (new["evalsha"], new["mget"], new["other"]) == (1, 0, 0)
    retry = await calls(new_license(b"cdm-1"), started)
    assert (retry["evalsha"], retry["mget"], retry["other"]) == (1, 0, 0)
    renewed = await calls(renewal(b"cdm-1"))
    assert (renewed["evalsha"], renewed["mget"], renewed["other"]) == (1, 1, 0)
    fake_clock.advance(90 + 30 + 60)  # the first token expired a minute ago
    graced = await calls(renewal(b"cdm-1"), started)
    assert (graced["evalsha"], graced["mget"], graced["other"]) == (1, 1, 0)
    released = await calls(release(b"cdm-1"))
    assert (released["evalsha"], released["mget"], released["other"]) == (1, 1, 0)


@pytest.mark.parametrize(("replay", "slots"), [({"subject_claim": "account"}, 1), ({}, 2)])
async def test_replay_follows_the_subject_claim_into_its_slot(
    redis_cluster, proxy_factory, dev_token, replay, slots
):
    """Counted per account, a request's sessions live in the account's slot; the token's
    use counter joins them there when replay names the same claim, else it is a second
    script (same round trip)."""
    rules = {
        "state": {"store": redis_cluster.url, "timeout": "2s"},
        "replay": replay,
        "concurrency": {"limit": 100, "subject_claim": "account"},
    }
    proxy = await proxy_factory(proxy_config({"access": rules}))
    assert (await grpc_call(proxy, dev_token({"account": "warm"}), content_id="w")).ok
    reset_stats(redis_cluster.data_nodes)
    for i in range(10):
        token = dev_token({"sub": f"user-{i}", "account": f"acct-{i}"})
        assert (await grpc_call(proxy, token, content_id=f"t{i}")).ok
    assert command_calls(redis_cluster.masters())["evalsha"] == 10 * slots


# -- cluster specifics -----------------------------------------------------------------------


@pytest_asyncio.fixture
async def cluster_store(redis_cluster) -> AsyncIterator[ClusterStore]:
    store = open_store(redis_cluster.url, prefix="fleet:", timeout=2)
    assert isinstance(store, ClusterStore)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


async def test_a_refusal_in_one_slot_gives_back_what_another_slot_took(cluster_store):
    tag = slot_tag("carol")

    def request(n: int) -> list:
        return [
            UseOp(f"{tag}replay:t{n}", 1, 60),
            SessionOp(f"{tag}sessions", f"s{n}", limit=2, ttl=60),
            RateOp("rate:ip:198.51.100.7", interval=60, burst=1),
        ]

    assert len(cluster_store.slot_groups(request(1))) == 2
    first = await cluster_store.apply(request(1), now=NOW)
    assert first.denied is None and len(first.taken) == 2
    refused = await cluster_store.apply(request(2), now=NOW)  # the address bucket is empty
    assert refused.denied == 2 and refused.retry_after == pytest.approx(60)
    # the refused request spent no use and holds no session: t2 and s2 are still free
    later = [op for op in request(2) if not isinstance(op, RateOp)]
    assert (await cluster_store.apply(later, now=NOW)).taken == tuple(later)
    # and the limit of two sessions is reached only now
    assert (await cluster_store.apply(request(3)[:2], now=NOW)).denied == 1


async def test_a_dry_run_across_slots_writes_nothing(cluster_store):
    ops = [UseOp(f"{slot_tag('dan')}replay:t", 1, 60), UseOp("replay:elsewhere", 1, 60)]
    assert len(cluster_store.slot_groups(ops)) == 2
    for _ in range(3):
        assert (await cluster_store.apply(ops, now=NOW, commit=False)).denied is None
    assert (await cluster_store.apply(ops, now=NOW)).taken == tuple(ops)
    assert (await cluster_store.apply(ops[1:], now=NOW)).denied == 0


@pytest.mark.parametrize("target", ["redis-cluster", "redis-sentinel"])
async def test_a_master_without_the_script_loads_it_and_answers(store_target, target):
    fleet = store_target(target)
    store = open_store(fleet.url, prefix="noscript:", timeout=2)
    await store.start()
    try:
        one_slot = [UseOp(f"{slot_tag('erin')}u", 1, 60)]
        two_slots = [UseOp(f"{slot_tag('erin')}v", 1, 60), UseOp("elsewhere", 1, 60)]
        for ops in (one_slot, two_slots):
            for master in fleet.masters():  # as after a failover to a replica, or a restart
                call(master.port, "SCRIPT", "FLUSH")
            assert (await store.apply(ops, now=NOW)).taken == tuple(ops)
            assert (await store.apply(ops, now=NOW)).denied == 0
    finally:
        await store.close()


async def test_a_resharding_under_load_loses_no_decision(redis_cluster):
    """A slot holding live sessions and token uses moves to another master key by key
    (``MIGRATING``/``IMPORTING``, then ``MIGRATE``, as ``redis-cli --cluster reshard``
    does) while requests for it keep coming. One-key calls follow ``ASK`` at once; a
    call whose keys are split between the two masters is turned away (``TRYAGAIN``) and
    waits until the slot has moved. Every answer is the right decision, and the state
    arrives whole."""
    store = open_store(redis_cluster.url, prefix="fleet:", timeout=10)
    await store.start()
    tag = slot_tag("frank")
    slot = int(call(redis_cluster.nodes[0].port, "CLUSTER", "KEYSLOT", f"fleet:{tag}"))

    def use(n: int) -> UseOp:
        return UseOp(f"{tag}replay:t{n}", 1, 600)

    def session(n: int) -> SessionOp:
        return SessionOp(f"{tag}sessions", f"s{n}", 3, 600)

    for n in range(3):  # three live sessions (the limit) and their spent tokens
        assert (await store.apply([use(n), session(n)], now=NOW)).denied is None
    for n in range(20):  # more keys in the slot, so that it moves in many steps
        assert (await store.apply([UseOp(f"{tag}filler:{n}", 9, 600)], now=NOW)).denied is None
    source = redis_cluster.master_for_slot(slot)
    target = next(m for m in redis_cluster.masters() if m is not source)
    reset_stats([source, target])
    answers: list[str] = []
    progress = threading.Condition()
    one_key_calls = 0
    moving = True

    async def loader(kind: str) -> None:
        nonlocal one_key_calls
        n = 100
        while moving:
            n += 1
            if kind == "replayed token":
                ops, expected = [use(n % 3)], 0
            elif kind == "live session":
                ops, expected = [session(n % 3)], None
            else:  # a new token and a new session: refused, the set is full
                ops, expected = [use(n), session(n)], 1
            try:
                outcome = await asyncio.wait_for(store.apply(ops, now=NOW), HANG_GUARD)
            except StateUnavailable as exc:
                answers.append(f"{kind}: unavailable: {exc}")
                continue
            answers.append("right" if outcome.denied == expected else f"{kind}: wrong")
            if len(ops) == 1:
                with progress:
                    one_key_calls += 1
                    progress.notify_all()

    def after_each_key() -> None:  # each half-moved state meets calls before the next key
        with progress:
            seen = one_key_calls
            progress.wait_for(lambda: one_key_calls >= seen + 2, timeout=5)

    kinds = ("replayed token", "live session", "new session")
    loaders = [asyncio.create_task(loader(kind)) for kind in kinds]
    try:
        moved = await asyncio.to_thread(
            redis_cluster.migrate_slot, slot, target, between_keys=after_each_key
        )
    finally:
        moving = False
        await asyncio.gather(*loaders)
    try:
        assert moved == 24  # 3 token uses, the session set, 20 fillers
        assert redis_cluster.master_for_slot(slot) is target
        assert len(answers) >= 24 * 2
        assert set(answers) == {"right"}, [a for a in answers if a != "right"][:5]
        # the calls met the slot half moved: redirected (ASK) and told to wait (TRYAGAIN)
        errors: dict[str, int] = {}
        for node in (source, target):
            for name, stat in _admin_info(node.port, "errorstats").items():
                errors[name] = errors.get(name, 0) + int(stat["count"])
        assert errors.get("errorstat_ASK", 0) > 0, errors
        assert errors.get("errorstat_TRYAGAIN", 0) > 0, errors
        # the state moved whole: tokens still spent, the set still full
        assert (await store.apply([use(0)], now=NOW)).denied == 0
        assert (await store.apply([session(99)], now=NOW)).denied == 0
    finally:
        await store.close()


def _admin_info(port: int, section: str) -> dict:
    client = admin_client(port)
    try:
        return client.info(section)
    finally:
        client.close()


# -- a hung server: the whole call is bounded by timeout -------------------------------------


def _holder(fleet, key: str):
    if isinstance(fleet, LocalCluster):
        return fleet.master_for_key(key)
    if isinstance(fleet, SentinelGroup):
        return fleet.master()
    return fleet


@pytest.mark.parametrize(
    "target", ["redis", "redis-cluster", "redis-sentinel", "valkey-cluster", "valkey-sentinel"]
)
async def test_a_hung_master_answers_state_unavailable_while_still_hung(store_target, target):
    fleet = store_target(target)
    store = open_store(fleet.url, prefix="hung:", timeout=0.2)
    assert isinstance(store, ScriptStore)
    await store.start()
    ops = [UseOp(f"{slot_tag('gina')}u", 5, 60), SessionOp(f"{slot_tag('gina')}s", "a", 5, 60)]
    try:
        assert (await store.apply(ops, now=NOW)).denied is None  # connected, script loaded
        holder = _holder(fleet, f"hung:{slot_tag('gina')}")
        holder.pause()  # SIGSTOP: the connection stays open and nothing answers
        try:
            with pytest.raises(StateUnavailable) as raised:
                await asyncio.wait_for(store.apply(ops, now=NOW), HANG_GUARD)
            still_hung = holder.paused
        finally:
            holder.resume()
        assert still_hung, "the answer came only after the server woke up"
        assert "200 ms" in str(raised.value)
    finally:
        await store.close()


# -- a master killed under load ----------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["redis-cluster", "redis-sentinel", "valkey-cluster", "valkey-sentinel"]
)
async def test_a_master_killed_under_load(store_target, target):
    """Calls during the gap answer STATE_UNAVAILABLE within the timeout, none hangs, the
    store finds the promoted replica by itself, and the over-admissions (writes the dead
    master acknowledged and its replica never got) stay within the calls in flight."""
    fleet = store_target(target)
    # Sentinel's replica learns writes asynchronously: the bound below is a promise only with
    # replica_acks (without it a drill lost up to 7 on a loaded machine; bench.access counts).
    acks = 1 if target.endswith("sentinel") else 0
    store = open_store(fleet.url, prefix="drill:", timeout=0.25, replica_acks=acks)
    await store.start()
    loop = asyncio.get_running_loop()
    victim = _holder(fleet, "drill:" + subject_tag("drill-subject-0"))

    def kill() -> None:
        if isinstance(fleet, LocalCluster):
            fleet.kill(victim)
        else:
            victim.kill()

    async def recovered() -> None:
        if isinstance(fleet, LocalCluster):
            await asyncio.to_thread(fleet.wait_promoted, victim)
        else:
            await asyncio.to_thread(fleet.wait_failover, victim.port)

    workers = 16
    try:
        report = await asyncio.wait_for(
            failover_drill(store, kill, recovered, now=loop.time, workers=workers),
            120,
        )
    finally:
        await store.close()
    print(f"{target}: {report.line()}")
    assert report.hung == 0
    assert report.answers["unavailable"] > 0  # the gap was met, and answered
    assert report.answers["admitted"] > 0 and report.answers["refused"] > 0
    assert report.over_admissions <= workers


async def test_after_a_failover_the_promoted_replica_answers_with_the_state(redis_cluster):
    """The master of a slot killed: unavailable, then, with no restart of the store, the
    promoted replica answers, and it remembers what was written before."""
    store = open_store(redis_cluster.url, prefix="back:", timeout=0.25)
    await store.start()
    key = f"{slot_tag('hank')}u"
    try:
        assert (await store.apply([UseOp(key, 1, 60)], now=NOW)).denied is None
        # written and replicated (a write the master dies with is another test's matter)
        await asyncio.to_thread(redis_cluster.wait_replicated)
        master = redis_cluster.master_for_key(f"back:{key}")
        redis_cluster.kill(master)
        with pytest.raises(StateUnavailable):
            await asyncio.wait_for(store.apply([UseOp(key, 1, 60)], now=NOW), HANG_GUARD)
        await asyncio.to_thread(redis_cluster.wait_promoted, master)
        answered = None
        for _ in range(200):
            with contextlib.suppress(StateUnavailable):
                answered = await store.apply([UseOp(key, 1, 60)], now=NOW)
                break
            await asyncio.sleep(0.05)
        assert answered is not None and answered.denied == 0  # the replica had the use
    finally:
        await store.close()


async def test_with_no_master_rules_fail_open_or_closed_and_recover_by_themselves(
    redis_sentinel, proxy_factory, dev_token
):
    """Sentinel: while no master is known, a fail-open rule admits and a fail-closed one
    answers STATE_UNAVAILABLE; after the promotion both enforce again, same processes."""
    state = {"store": redis_sentinel.url, "timeout": "250ms"}
    closed = await proxy_factory(proxy_config({"access": {"state": state, "replay": {}}}))
    opened = await proxy_factory(
        proxy_config({"access": {"state": state, "replay": {"fail_open": True}}})
    )
    token = dev_token()
    assert (await grpc_call(closed, token)).ok
    old = redis_sentinel.master()
    old.kill()
    down = await grpc_call(closed, dev_token())
    assert down.reason == "STATE_UNAVAILABLE"
    assert (await grpc_call(opened, dev_token())).ok
    await asyncio.to_thread(redis_sentinel.wait_failover, old.port)
    again = dev_token()
    for _ in range(200):
        answer = await grpc_call(closed, again)
        if answer.reason != "STATE_UNAVAILABLE":
            break
        await asyncio.sleep(0.05)
    assert answer.ok
    assert (await grpc_call(opened, again)).reason == "TOKEN_REPLAYED"


async def test_replica_acks_wait_for_the_replica_in_the_same_round_trip(redis_sentinel):
    """With ``replica_acks`` every write is followed by a pipelined WAIT: still one round
    trip per request, and the replica holds the write when the call answers."""
    from proxy.state import SessionOp

    store = open_store(redis_sentinel.url, prefix="acks:", timeout=0.5, replica_acks=1)
    await store.start()
    try:
        await store.ping()
        master = redis_sentinel.master()
        reset_stats([master])
        outcome = await store.apply(
            [SessionOp(key="{t}s", session="a", limit=2, ttl=60)], now=1_000.0
        )
        calls = command_calls([master])
    finally:
        await store.close()
    assert outcome.denied is None
    assert calls["wait"] == 1 and calls["evalsha"] == 1


@pytest.mark.parametrize(
    ("section", "path_part"),
    [
        ({"store": "memory", "replica_acks": 1}, "single and Sentinel"),
        ({"store": "redis+cluster://127.0.0.1:7000", "replica_acks": 1}, "single and Sentinel"),
        (
            {"store": "redis://127.0.0.1:6379", "replica_acks": 1, "replica_ack_timeout": "1s"},
            "shorter than timeout",
        ),
    ],
)
def test_replica_acks_that_cannot_hold_fail_at_start(section, path_part):
    from proxy.builder import build_pipeline
    from proxy.errors import ConfigError
    from proxy.testing import proxy_config

    with pytest.raises(ConfigError) as raised:
        build_pipeline(proxy_config({"access": {"state": section}}))
    errors = dict(raised.value.errors)
    assert path_part in errors["access.state"]
