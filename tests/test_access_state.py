"""The state stores: the memory store and the Redis Lua script answer alike, atomically."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.state import (
    ClusterStore,
    MemoryStore,
    RateOp,
    RecordMode,
    RecordOp,
    RedisStore,
    SessionMode,
    SessionOp,
    StateStore,
    StateUnavailable,
    UseOp,
    open_store,
    redacted_url,
)
from proxy.testing.fleet import TARGETS

NOW = 1_800_000_000.0


#: Every store, on every server the tests can start (``proxy.testing.fleet.TARGETS``).
STORES = ["memory", *TARGETS]


@pytest_asyncio.fixture(params=STORES)
async def store(request) -> AsyncIterator[StateStore]:
    """Each test runs against every store: memory, and Redis and Valkey in each mode.

    The keys of one batch mostly fall in different hash slots, so on a cluster these
    tests also run the pipelined path across slots."""
    if request.param == "memory":
        instance: StateStore = MemoryStore("test:")
    else:
        target = request.getfixturevalue("store_target")(request.param)
        instance = open_store(target.url, prefix="test:", timeout=2)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.close()


async def test_a_use_counter_allows_exactly_its_limit(store):
    op = UseOp("token", limit=2, ttl=60)
    assert (await store.apply([op], now=NOW)).denied is None
    assert (await store.apply([op], now=NOW)).denied is None
    refused = await store.apply([op], now=NOW)
    assert refused.denied == 0 and refused.retry_after is None


async def test_a_refused_batch_spends_nothing(store):
    full = SessionOp("sessions", "other", limit=1, ttl=60)
    assert (await store.apply([full], now=NOW)).denied is None
    use = UseOp("token", limit=1, ttl=60)
    mine = SessionOp("sessions", "mine", limit=1, ttl=60)
    assert (await store.apply([use, mine], now=NOW)).denied == 1
    # the token was not spent by the refused request
    assert (await store.apply([use], now=NOW)).denied is None


async def test_sessions_count_once_expire_and_release(store):
    def take(session: str) -> SessionOp:
        return SessionOp("alice", session, limit=2, ttl=100)

    assert (await store.apply([take("a")], now=NOW)).taken == (take("a"),)
    assert (await store.apply([take("b")], now=NOW + 10)).denied is None
    again = await store.apply([take("a")], now=NOW + 20)
    assert again.denied is None and again.taken == ()  # the same session is not counted twice
    refused = await store.apply([take("c")], now=NOW + 30)
    assert refused.denied == 0
    assert refused.retry_after == pytest.approx(80)  # "b" lapses at NOW + 110
    release = SessionOp("alice", "a", limit=2, ttl=100, mode=SessionMode.RELEASE)
    assert (await store.apply([release], now=NOW + 40)).denied is None
    assert (await store.apply([take("c")], now=NOW + 41)).denied is None
    # "b" lapses 100 s after its last request; then "d" fits
    assert (await store.apply([take("d")], now=NOW + 109)).denied == 0
    assert (await store.apply([take("d")], now=NOW + 111)).denied is None


async def test_a_touch_keeps_a_session_alive_and_never_adds_or_refuses(store):
    def op(session: str, mode: SessionMode = SessionMode.TAKE) -> SessionOp:
        return SessionOp("bob", session, limit=1, ttl=100, mode=mode)

    await store.apply([op("a")], now=NOW)
    assert (await store.apply([op("a", SessionMode.TOUCH)], now=NOW + 90)).denied is None
    assert (await store.apply([op("b")], now=NOW + 150)).denied == 0  # kept alive by the touch
    # touching an unknown session at a full limit neither refuses nor adds it
    touched = await store.apply([op("z", SessionMode.TOUCH)], now=NOW + 150)
    assert touched.denied is None and touched.taken == ()
    assert (await store.apply([op("b")], now=NOW + 191)).denied is None


async def test_gcra_rate_with_burst_and_retry_after(store):
    op = RateOp("carol", interval=10, burst=3)
    for _ in range(3):
        assert (await store.apply([op], now=NOW)).denied is None
    refused = await store.apply([op], now=NOW)
    assert refused.denied == 0 and refused.retry_after == pytest.approx(10)
    assert (await store.apply([op], now=NOW + 9)).denied == 0
    assert (await store.apply([op], now=NOW + 10)).denied is None
    assert (await store.apply([op], now=NOW + 10)).denied == 0


async def test_a_rate_bucket_counts_attempts_even_when_a_later_check_refuses(store):
    used = UseOp("spent", limit=1, ttl=60)
    await store.apply([used], now=NOW)
    rate = RateOp("dave", interval=10, burst=2)
    assert (await store.apply([rate, used], now=NOW)).denied == 1
    assert (await store.apply([rate, used], now=NOW)).denied == 1
    assert (await store.apply([rate, used], now=NOW)).denied == 0  # the bucket is empty now


async def test_a_dry_run_writes_nothing(store):
    use = UseOp("token", limit=1, ttl=60)
    session = SessionOp("erin", "a", limit=1, ttl=60)
    for _ in range(3):
        outcome = await store.apply([use, session], now=NOW, commit=False)
        assert outcome.denied is None and outcome.taken == ()
    assert (await store.apply([use, session], now=NOW)).denied is None
    assert (await store.apply([use], now=NOW, commit=False)).denied == 0


async def test_undo_gives_back_a_use_and_a_new_session(store):
    use = UseOp("token", limit=1, ttl=60)
    session = SessionOp("frank", "a", limit=1, ttl=60)
    outcome = await store.apply([use, session], now=NOW)
    assert outcome.taken == (use, session)
    await store.undo(outcome.taken)
    assert (
        await store.apply([use, SessionOp("frank", "b", limit=1, ttl=60)], now=NOW)
    ).denied is None


async def test_many_concurrent_batches_admit_exactly_the_limit(store):
    async def one(i: int) -> bool:
        ops = [UseOp(f"token-{i}", 1, 60), SessionOp("grace", f"s{i}", limit=5, ttl=60)]
        return (await store.apply(ops, now=NOW)).denied is None

    admitted = await asyncio.gather(*(one(i) for i in range(40)))
    assert sum(admitted) == 5


# -- retries, playbacks and records (issue 13) ---------------------------------------------


def _use(window: float = 30.0) -> UseOp:
    return UseOp("{t}token", limit=1, ttl=600, retry_key="{t}retry:abc", retry_window=window)


async def test_a_retry_within_the_window_rides_the_use_and_skips_the_rate_buckets(store):
    rate = RateOp("{t}rate", interval=100, burst=1)
    first = await store.apply([rate, _use()], now=NOW)
    assert first.denied is None and first.taken == (_use(),)
    # the same challenge and token again: admitted, no second use, the empty bucket not asked
    again = await store.apply([rate, _use()], now=NOW + 5)
    assert again.denied is None
    [ridden] = again.taken
    assert ridden.rides and ridden.key == "{t}token"
    # another challenge with the same token is a replay, and the bucket counts it
    other = UseOp("{t}token", limit=1, ttl=600, retry_key="{t}retry:def", retry_window=30)
    assert (await store.apply([rate, other], now=NOW + 6)).denied == 0
    # past the window the same challenge spends a use like any request
    assert (await store.apply([_use()], now=NOW + 31)).denied == 0


async def test_a_given_back_use_stays_spent_while_a_retry_rides_it(store):
    first = await store.apply([_use()], now=NOW)
    ridden = await store.apply([_use()], now=NOW + 1)
    await store.undo(first.taken)  # the first attempt failed after all
    # the retry that rode it was admitted: the use stays spent
    other = UseOp("{t}token", limit=1, ttl=600, retry_key="{t}retry:other", retry_window=30)
    assert (await store.apply([other], now=NOW + 2)).denied == 0
    await store.undo(ridden.taken)
    # every request riding on it failed: the use is back, a new request spends it
    fresh = await store.apply([_use()], now=NOW + 4)
    assert fresh.denied is None and fresh.taken == (_use(),)


def _playback(session: str, mode: SessionMode = SessionMode.TAKE, **extra) -> SessionOp:
    return SessionOp("{p}live", session, limit=2, ttl=100, mode=mode, **extra)


def _stop(session: str, mode: SessionMode = SessionMode.TAKE, **extra) -> SessionOp:
    return _playback(session, mode, stopped_key="{p}stopped", **extra)


async def test_stop_oldest_makes_room_and_refuses_the_stopped_sessions_next_touch(store):
    assert (await store.apply([_stop("a")], now=NOW)).denied is None
    assert (await store.apply([_stop("b")], now=NOW + 1)).denied is None
    # a third playback stops the one heard from least recently ("a"), never refused
    third = await store.apply([_stop("c")], now=NOW + 2)
    assert third.denied is None and third.taken == (_stop("c"),)
    assert set(await store.sessions("{p}live", now=NOW + 2)) == {"b", "c"}
    assert (await store.apply([_stop("a", SessionMode.TOUCH)], now=NOW + 3)).denied == 0
    assert (await store.apply([_stop("b", SessionMode.TOUCH)], now=NOW + 3)).denied is None
    # "a" asking anew is a new playback: it gets back in, stopping the oldest again ("c")
    assert (await store.apply([_stop("a")], now=NOW + 4)).denied is None
    assert (await store.apply([_stop("a", SessionMode.TOUCH)], now=NOW + 5)).denied is None
    assert (await store.apply([_stop("c", SessionMode.TOUCH)], now=NOW + 5)).denied == 0
    # a stopped session is remembered for one ttl, then its touch is a no-op again
    late = await store.apply([_stop("c", SessionMode.TOUCH)], now=NOW + 105)
    assert late.denied is None and late.taken == ()
    # a release of a stopped session is not refused, and forgets it
    assert (await store.apply([_stop("c")], now=NOW + 106)).denied is None


async def test_a_content_limit_counts_the_sessions_of_one_content(store):
    def watch(session: str, content: str, **extra) -> SessionOp:
        return SessionOp(
            "{p}live",
            session,
            limit=3,
            ttl=100,
            content_key="{p}contents",
            content=content,
            content_limit=1,
            **extra,
        )

    assert (await store.apply([watch("a", "movie")], now=NOW)).denied is None
    refused = await store.apply([watch("b", "movie")], now=NOW + 10)
    assert refused.denied == 0 and refused.retry_after == pytest.approx(90)
    assert (await store.apply([watch("b", "series")], now=NOW + 10)).denied is None
    # stop-oldest stops the other playback of the same content, not the oldest overall
    stop = {"stopped_key": "{p}stopped"}
    assert (await store.apply([watch("c", "series", **stop)], now=NOW + 20)).denied is None
    assert set(await store.sessions("{p}live", now=NOW + 20)) == {"a", "c"}
    # a release frees the content at once
    release = watch("a", "movie", mode=SessionMode.RELEASE)
    assert (await store.apply([release], now=NOW + 21)).denied is None
    assert (await store.apply([watch("d", "movie")], now=NOW + 22)).denied is None


async def test_records_begin_extend_and_end(store):
    begin = RecordOp("{r}license", RecordMode.BEGIN, ttl=100, payload="playback movie 1")
    outcome = await store.apply([begin], now=NOW)
    assert outcome.taken == (begin,)
    [record] = await store.records(["{r}license"], now=NOW + 1)
    assert record is not None and record.payload == "playback movie 1"
    assert (record.started, record.until) == (pytest.approx(NOW), pytest.approx(NOW + 100))
    # begun again while live (a retry): the start stays, the payload is replaced
    again = RecordOp("{r}license", RecordMode.BEGIN, ttl=10, payload="other")
    assert (await store.apply([again], now=NOW + 50)).taken == ()
    [record] = await store.records(["{r}license"], now=NOW + 50)
    assert record is not None and record.started == pytest.approx(NOW)
    assert (record.until, record.payload) == (pytest.approx(NOW + 100), "other")
    extend = RecordOp("{r}license", RecordMode.EXTEND, ttl=100)
    await store.apply([extend], now=NOW + 90)
    [record] = await store.records(["{r}license"], now=NOW + 150)
    assert record is not None and record.until == pytest.approx(NOW + 190)
    assert await store.records(["{r}license", "{r}none"], now=NOW + 190) == [None, None]
    # extending what lapsed begins nothing
    await store.apply([extend], now=NOW + 200)
    assert await store.records(["{r}license"], now=NOW + 200) == [None]
    await store.apply([begin], now=NOW + 300)
    await store.apply([RecordOp("{r}license", RecordMode.END)], now=NOW + 301)
    assert await store.records(["{r}license"], now=NOW + 301) == [None]
    assert await store.records([], now=NOW) == []


async def test_undo_removes_a_begun_record_and_a_new_sessions_content(store):
    begin = RecordOp("{r}license", RecordMode.BEGIN, ttl=100, payload="x")
    watch = SessionOp(
        "{r}live", "a", limit=1, ttl=100, content_key="{r}contents", content="m", content_limit=1
    )
    outcome = await store.apply([begin, watch], now=NOW)
    await store.undo(outcome.taken)
    assert await store.records(["{r}license"], now=NOW) == [None]
    other = SessionOp(
        "{r}live", "b", limit=1, ttl=100, content_key="{r}contents", content="m", content_limit=1
    )
    assert (await store.apply([other], now=NOW + 1)).denied is None


async def test_a_cluster_refuses_an_operation_whose_keys_span_slots(redis_cluster):
    store = ClusterStore(redis_cluster.url, prefix="span:", timeout=2)
    await store.start()
    try:
        split = SessionOp("{a}live", "s", limit=1, ttl=10, stopped_key="{b}stopped")
        with pytest.raises(ValueError, match="share a hash slot"):
            await store.apply([split], now=NOW)
    finally:
        await store.close()


async def test_redis_down_is_state_unavailable_and_recovers(redis_server):
    store = RedisStore(redis_server.url, prefix="down:", timeout=0.5)
    await store.start()
    try:
        op = UseOp("token", 1, 60)
        assert (await store.apply([op], now=NOW)).denied is None
        redis_server.kill()
        with pytest.raises(StateUnavailable) as raised:
            await store.apply([op], now=NOW)
        assert "redis" in str(raised.value)
        assert not await store.ping()
        redis_server.start()  # empty again: the script is loaded anew (NOSCRIPT handled)
        assert (await store.apply([op], now=NOW)).denied is None
        assert (await store.apply([op], now=NOW)).denied == 0
    finally:
        await store.close()


async def test_the_memory_store_is_shared_by_pipelines_while_one_runs():
    first = open_store("memory", prefix="shared-test:")
    await first.start()
    try:
        assert open_store("memory", prefix="shared-test:") is first  # a reload finds it
        assert open_store("memory", prefix="other:") is not first
    finally:
        await first.close()
    assert open_store("memory", prefix="shared-test:") is not first


async def test_the_memory_store_forgets_what_expired():
    store = MemoryStore()
    for i in range(100):
        await store.apply([UseOp(f"t{i}", 1, 10)], now=NOW)
    assert len(store) == 100
    for step in range(3):
        await store.apply([], now=NOW + 11 + step)
    assert len(store) == 0


def test_redacted_url_drops_credentials():
    assert redacted_url("redis://user:s3cret@cache:6380/2") == "redis://cache:6380/2"
    assert "s3cret" not in redacted_url("rediss://:s3cret@cache/0")
    assert redacted_url("unix:///run/redis.sock") == "unix:///run/redis.sock"


async def test_a_busy_key_does_not_grow_the_memory_stores_schedule():
    store = MemoryStore()
    for i in range(1000):
        ops = [RateOp("busy", interval=0.001, burst=10), SessionOp("s", "a", limit=1, ttl=60)]
        await store.apply(ops, now=NOW + i)
    assert len(store._expiries) <= 2


_op = st.one_of(
    st.builds(
        RateOp,
        key=st.sampled_from(["r1", "r2"]),
        interval=st.sampled_from([0.5, 1.0, 7.0]),
        burst=st.integers(1, 3),
    ),
    st.builds(
        UseOp,
        key=st.sampled_from(["u1", "u2"]),
        limit=st.integers(1, 3),
        ttl=st.sampled_from([5.0, 60.0]),
    ),
    st.builds(
        SessionOp,
        key=st.sampled_from(["s1", "s2"]),
        session=st.sampled_from(["a", "b", "c", "d"]),
        limit=st.integers(0, 3),
        ttl=st.sampled_from([10.0, 30.0]),
        mode=st.sampled_from(list(SessionMode)),
    ),
    st.builds(
        UseOp,
        key=st.sampled_from(["u1", "u2"]),
        limit=st.integers(1, 2),
        ttl=st.sampled_from([5.0, 60.0]),
        retry_key=st.sampled_from(["m1", "m2"]),
        retry_window=st.sampled_from([1.0, 4.0]),
    ),
    st.builds(
        lambda key, stop, per_content, **fields: SessionOp(
            key,
            stopped_key=f"{key}:stopped" if stop else None,
            content_key=f"{key}:contents" if per_content is not None else None,
            content_limit=per_content or 0,
            **fields,
        ),
        key=st.sampled_from(["p1", "p2"]),
        stop=st.booleans(),
        per_content=st.sampled_from([None, 0, 1, 2]),
        session=st.sampled_from(["a", "b", "c", "d"]),
        limit=st.integers(1, 3),
        ttl=st.sampled_from([10.0, 30.0]),
        mode=st.sampled_from(list(SessionMode)),
        content=st.sampled_from(["x", "y"]),
    ),
    st.builds(
        RecordOp,
        key=st.sampled_from(["w1", "w2"]),
        mode=st.sampled_from(list(RecordMode)),
        ttl=st.sampled_from([0.0, 5.0, 20.0]),
        payload=st.sampled_from(["", "p q", "r"]),
    ),
)
_step = st.tuples(st.lists(_op, max_size=4), st.sampled_from([0.0, 0.5, 3.0, 12.0]), st.booleans())
_examples = itertools.count()


@settings(
    deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_step, min_size=1, max_size=25))
def test_both_stores_answer_every_sequence_alike(redis_server, steps):
    _answer_alike(redis_server.url, f"eq{next(_examples)}:", steps)


@settings(
    deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_step, min_size=1, max_size=25))
def test_a_cluster_answers_like_memory_when_the_keys_share_a_tag(redis_cluster, steps):
    """Keys tagged alike (as one subject's are) settle in one script on one master."""
    _answer_alike(redis_cluster.url, f"eq{next(_examples)}:{{subject}}", steps)


def _answer_alike(url: str, prefix: str, steps: list) -> None:
    async def run() -> None:
        memory = MemoryStore(prefix)
        redis = open_store(url, prefix=prefix, timeout=2)
        await redis.start()
        try:
            now = NOW
            for ops, advance, commit in steps:
                now += advance
                expected = await memory.apply(ops, now=now, commit=commit)
                actual = await redis.apply(ops, now=now, commit=commit)
                assert actual.denied == expected.denied, (ops, expected, actual)
                assert actual.taken == expected.taken
                if expected.retry_after is None:
                    assert actual.retry_after is None
                else:
                    assert actual.retry_after == pytest.approx(expected.retry_after, abs=1e-5)
                keys = ["w1", "w2"]
                assert await redis.records(keys, now=now) == await memory.records(keys, now=now)
                for key in ("p1", "p2", "s1", "s2"):
                    assert await redis.sessions(key, now=now) == await memory.sessions(key, now=now)
        finally:
            await redis.close()

    asyncio.run(run())


# -- operator actions (the admin API) ------------------------------------------------------


async def test_a_mark_holds_until_its_time_and_can_be_cleared(store):
    await store.put_mark("revoked:a", until=NOW + 60, now=NOW)
    assert await store.marks(["revoked:a", "revoked:b"], now=NOW) == [NOW + 60, None]
    assert await store.marks(["revoked:a"], now=NOW + 59.9) == [NOW + 60]
    assert await store.marks(["revoked:a"], now=NOW + 60) == [None]
    await store.put_mark("revoked:a", until=NOW + 10, now=NOW)  # replaced, not extended
    assert await store.marks(["revoked:a"], now=NOW + 20) == [None]
    await store.put_mark("revoked:b", until=NOW + 60, now=NOW)
    assert await store.clear_mark("revoked:b") is True
    assert await store.clear_mark("revoked:b") is False
    assert await store.marks(["revoked:b"], now=NOW) == [None]
    assert await store.marks([], now=NOW) == []


async def test_sessions_are_listed_and_ended_one_or_all(store):
    for session, at in (("s1", NOW), ("s2", NOW + 1), ("s3", NOW + 2)):
        op = SessionOp("sessions:alice", session, limit=3, ttl=100)
        assert (await store.apply([op], now=at)).denied is None
    live = await store.sessions("sessions:alice", now=NOW + 50)
    assert live == {"s1": NOW + 100, "s2": NOW + 101, "s3": NOW + 102}
    assert await store.sessions("sessions:alice", now=NOW + 100.5) == {
        "s2": NOW + 101,
        "s3": NOW + 102,
    }
    assert await store.end_sessions("sessions:alice", ["s2", "nope"], now=NOW + 50) == 1
    # the slot is free at once: a new session fits beside the two left
    fourth = SessionOp("sessions:alice", "s4", limit=3, ttl=100)
    assert (await store.apply([fourth], now=NOW + 51)).denied is None
    assert (
        await store.apply([SessionOp("sessions:alice", "s5", limit=3, ttl=100)], now=NOW + 51)
    ).denied == 0
    assert await store.end_sessions("sessions:alice", now=NOW + 52) == 3
    assert await store.sessions("sessions:alice", now=NOW + 52) == {}
    assert await store.end_sessions("sessions:nobody", now=NOW) == 0
    assert await store.end_sessions("sessions:alice", [], now=NOW) == 0
