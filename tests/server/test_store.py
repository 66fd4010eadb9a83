"""The job server's store on every engine it supports: SQLite, PostgreSQL and MariaDB, each a real server."""

import json
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from worker_app.server.schema import SCHEMA_VERSION
from worker_app.server.store import JOBS, Canceled, WakeKind, Wakeup, Conflict, KeyReused, LeaseLost, NotFound, Store

SPEC = {"scene": {"url": "/a", "sha256": "a" * 64, "size": 1}}
BLENDER_4_2 = {"blender": [{"version": "4.2.3"}]}


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(db_url, clock):
    store = Store(db_url, lease_ttl=60, clock=clock)
    yield store
    store.close()


def test_a_job_goes_from_queued_to_done(store):
    worker = store.register_worker("pc", BLENDER_4_2)
    job = store.submit(SPEC, priority=0, max_attempts=3, tag="t")
    claimed = store.claim(worker)
    assert (claimed.job_id, claimed.attempt, claimed.spec, claimed.outputs) == (job, 1, SPEC, {})
    assert store.claim(worker) is None, "one job, leased once"
    assert store.heartbeat(job, claimed.lease_id, {"stage": "rendering"}) == (False, 60)
    store.add_output(job, claimed.lease_id, "frame_0001.png", "b" * 64, 1234)
    store.add_output(job, claimed.lease_id, "frame_0001.png", "c" * 64, 1235)  # an upload again replaces it
    with pytest.raises(Conflict, match="frame_0002.png"):
        store.complete(job, claimed.lease_id, ["frame_0001.png", "frame_0002.png"], {})
    store.complete(job, claimed.lease_id, ["frame_0001.png"], {"render_s": 1.5}, [{"kind": "missing_file"}])
    view = store.get(job)
    assert view["state"] == "done" and view["tag"] == "t" and view["stats"] == {"render_s": 1.5}
    assert view["outputs"] == [{"name": "frame_0001.png", "sha256": "c" * 64, "size": 1235}]
    assert view["warnings"] == [{"kind": "missing_file"}]
    with pytest.raises(LeaseLost):
        store.heartbeat(job, claimed.lease_id, {})
    with pytest.raises(NotFound):
        store.get(job + 1000)
    assert store.counts() == {"done": 1}


def test_outputs_and_ends_hold_only_for_the_current_lease(store, clock):
    """The one-statement upload and end check the lease, the outputs named and the job's state themselves."""
    worker = store.register_worker("pc", {})
    job = store.submit(SPEC, 0, 3, None)
    first = store.claim(worker)
    clock.now += store.first_lease_ttl + 1
    with pytest.raises(LeaseLost):
        store.add_output(job, first.lease_id, "frame_0001.png", "b" * 64, 1)
    assert store.expire_leases() == 1
    second = store.claim(worker)
    assert second.outputs == {}, "the upload of a lapsed lease recorded nothing"
    with pytest.raises(LeaseLost):
        store.complete(job, first.lease_id, [], {})
    store.add_output(job, second.lease_id, "frame_0001.png", "b" * 64, 1)
    store.complete(job, second.lease_id, ["frame_0001.png", "frame_0001.png"], {})  # a name given twice
    assert store.get(job)["state"] == "done"

    canceled = store.submit(SPEC, 0, 3, None)
    claimed = store.claim(worker)
    store.cancel(canceled)
    with pytest.raises(Canceled):
        store.add_output(canceled, claimed.lease_id, "frame_0001.png", "b" * 64, 1)
    with pytest.raises(Canceled):
        store.complete(canceled, claimed.lease_id, [], {})
    assert store.get(canceled)["state"] == "canceled" and store.get(canceled)["outputs"] == []


def test_a_long_spec_and_log_fit(store):
    """A spec may be 256 KiB and a log tail long: more than MySQL's TEXT holds."""
    spec = {**SPEC, "overrides": {"text": "x" * 200_000}}
    worker = store.register_worker("pc", {})
    job = store.submit(spec, 0, 1, None)
    claimed = store.claim(worker)
    assert claimed.spec == spec
    assert store.fail(job, claimed.lease_id, "scene: broken", "log line\n" * 10_000, retryable=False) == "failed"
    assert store.get(job)["log_tail"].count("log line") == 10_000


def test_priority_then_age_decides(store):
    worker = store.register_worker("pc", {})
    low = store.submit(SPEC, 0, 1, None)
    high = store.submit(SPEC, 5, 1, None)
    later = store.submit(SPEC, 0, 1, None)
    assert [store.claim(worker).job_id for _ in range(3)] == [high, low, later]


def test_each_job_is_leased_once_under_concurrent_claims(db_url, clock):
    """Eight server processes' worth of stores, each with its own connections, race for 120 jobs."""
    stores = [Store(db_url, lease_ttl=60, clock=clock) for _ in range(8)]
    try:
        workers = [s.register_worker(f"pc{i}", {}) for i, s in enumerate(stores)]
        for _ in range(120):
            stores[0].submit(SPEC, 0, 3, None)
        got: list[int] = []
        errors: list[BaseException] = []

        def drain(store, worker):
            try:
                while (claimed := store.claim(worker)) is not None:
                    got.append(claimed.job_id)
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=drain, args=pair) for pair in zip(stores * 2, workers * 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        assert sorted(got) == sorted(set(got)) and len(got) == 120
        assert stores[0].counts() == {"leased": 120}
    finally:
        for store in stores:
            store.close()


def test_an_expired_lease_goes_back_to_the_queue_then_fails_on_the_last_attempt(store, clock):
    worker = store.register_worker("pc", {})
    job = store.submit(SPEC, 0, 2, None)
    first = store.claim(worker)
    clock.now += store.first_lease_ttl + 1  # no heartbeat came: the short first lease ran out
    with pytest.raises(LeaseLost, match="expired"):
        store.heartbeat(job, first.lease_id, {})
    assert store.get(job)["state"] == "queued"
    second = store.claim(worker)
    assert second.attempt == 2
    store.heartbeat(job, second.lease_id, {})
    clock.now += 59
    assert store.expire_leases() == 0, "a heartbeat extended the lease to the full TTL"
    clock.now += 2
    assert store.expire_leases() == 1
    view = store.get(job)
    assert view["state"] == "failed" and view["error"] == "lease expired on attempt 2 of 2"
    with pytest.raises(LeaseLost):
        store.complete(job, second.lease_id, [], {})


def test_release_and_retryable_failures_requeue(store):
    worker = store.register_worker("pc", {})
    job = store.submit(SPEC, 0, 2, None)
    claimed = store.claim(worker)
    store.release(job, claimed.lease_id, "the owner started a game")
    assert store.get(job)["attempts"] == 0, "a release is not an attempt"
    claimed = store.claim(worker)
    assert store.fail(job, claimed.lease_id, "blender crashed", "", retryable=True) == "queued"
    claimed = store.claim(worker)
    assert claimed.attempt == 2
    assert store.fail(job, claimed.lease_id, "blender crashed", "", retryable=True) == "failed"


def test_a_canceled_job_tells_its_worker(store):
    worker = store.register_worker("pc", {})
    job = store.submit(SPEC, 0, 1, None)
    claimed = store.claim(worker)
    assert store.cancel(job)["state"] == "canceled"
    assert store.heartbeat(job, claimed.lease_id, {}) == (True, 0.0)
    with pytest.raises(Canceled):
        store.check_lease(job, claimed.lease_id)
    with pytest.raises(Conflict, match="already canceled"):
        store.cancel(job)


def test_jobs_go_only_to_workers_whose_blender_can_open_them(store):
    old = store.register_worker("old", {"blender": [{"version": "3.6.0"}]})
    newer = {"scene": SPEC["scene"], "blender": {"min_version": "4.2"}}
    job = store.submit(newer, 0, 3, None)
    new = store.register_worker("new", BLENDER_4_2)
    assert store.claim(old) is None, "a 3.6 worker was offered a job that needs 4.2"
    claimed = store.claim(new)
    assert claimed.job_id == job
    # A scene that needs a Blender no worker has goes to whoever asks, and is failed with the reason.
    none_has = store.submit({"scene": SPEC["scene"], "blender": {"min_version": "9.0"}}, 0, 3, None)
    assert store.claim(old).job_id == none_has


def test_a_scene_from_a_newer_blender_waits_for_a_worker_that_has_it(store):
    old = store.register_worker("old", {"blender": [{"version": "3.6.0"}]})
    store.register_worker("new", BLENDER_4_2)
    job = store.submit(SPEC, 0, 3, None)
    claimed = store.claim(old)
    assert store.fail(job, claimed.lease_id, "saved by Blender 4.2", "", False, needs_blender="4.2.0") == "queued"
    view = store.get(job)
    assert view["attempts"] == 0 and "waiting for a worker with Blender 4.2.0" in view["error"]
    assert store.claim(old) is None


def test_tokens_outlive_the_server_process(db_url, clock):
    """A replaced instance on the same database knows every token: no PC signs in again."""
    first = Store(db_url, clock=clock)
    token = first.create_token("worker", "pc")
    assert first.check_token(token, "worker") and not first.check_token(token, "app")
    assert not first.check_token("hfw_" + "x" * 43, "worker")
    first.close()
    again = Store(db_url, clock=clock)
    try:
        assert again.has_tokens() and again.check_token(token, "worker")
        with again.engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT hash, last_used FROM tokens").all()
        assert token not in str(stored) and stored[0][1] == clock.now, "only the hash, and when it was used"
    finally:
        again.close()


def test_announcements_reach_listeners_and_cancels_are_kept(store, clock):
    heard = []
    store.listeners.append(heard.append)
    worker = store.register_worker("pc", {})
    job = store.submit(SPEC, 0, 1, None)
    claimed = store.claim(worker)
    store.release(job, claimed.lease_id, "paused")
    store.cancel_claims(worker)
    assert heard == [JOBS, JOBS, Wakeup(WakeKind.CANCEL, worker)]
    assert [message.text() for message in heard] == ["jobs", "jobs", f"cancel {worker}"], "NOTIFY's payloads"
    assert Wakeup.parse(f"cancel {worker}") == heard[2] and Wakeup.parse("something newer") is None
    queued, canceled, _ = store.poll_wakeups(clock.now)
    assert queued and canceled == [worker] and store.poll_wakeups(clock.now + 1)[1] == []


def test_the_schema_is_made_once_by_processes_starting_together(db_url):
    errors = []

    ready = threading.Barrier(6)

    def start():
        try:
            ready.wait(30)
            Store(db_url).close()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version FROM homefarm_schema").scalars().all() == [SCHEMA_VERSION]
    engine.dispose()


def test_a_database_from_a_newer_server_is_refused(db_url):
    Store(db_url).close()
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE homefarm_schema SET version = 99")
    engine.dispose()
    with pytest.raises(RuntimeError, match="version 99, newer than this server's"):
        Store(db_url)


def test_the_first_releases_sqlite_database_is_upgraded_with_its_data(tmp_path):
    """A server from before schema versions: its jobs, tokens and workers carry over."""
    path = tmp_path / "homefarm-server.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, spec TEXT NOT NULL, tag TEXT,
            state TEXT NOT NULL DEFAULT 'queued', priority INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 3, lease_id TEXT,
            worker_id TEXT, lease_expires REAL, cancel_requested INTEGER NOT NULL DEFAULT 0, progress TEXT,
            error TEXT, log_tail TEXT, stats TEXT, created REAL NOT NULL, updated REAL NOT NULL, claimed REAL,
            finished REAL);
        CREATE INDEX jobs_queue ON jobs (state, priority DESC, id);
        CREATE TABLE outputs (job_id INTEGER NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL,
            size INTEGER NOT NULL, created REAL NOT NULL, PRIMARY KEY (job_id, name));
        CREATE TABLE workers (id TEXT PRIMARY KEY, name TEXT NOT NULL, info TEXT NOT NULL,
            first_seen REAL NOT NULL, last_seen REAL NOT NULL);
        CREATE TABLE tokens (hash TEXT PRIMARY KEY, kind TEXT NOT NULL, label TEXT NOT NULL, created REAL NOT NULL);
    """)
    from worker_app.server.schema import hash_token
    old.execute("INSERT INTO tokens VALUES (?, 'worker', 'pc', 1)", (hash_token("hfw_old"),))
    old.execute("INSERT INTO jobs (spec, state, created, updated) VALUES (?, 'queued', 1, 1)", (json.dumps(SPEC),))
    old.execute("INSERT INTO jobs (spec, state, created, updated) VALUES (?, 'done', 1, 2)", (json.dumps(SPEC),))
    old.execute("INSERT INTO outputs VALUES (2, 'frame_0001.png', ?, 10, 2)", ("d" * 64,))
    old.execute("INSERT INTO workers VALUES ('w_old', 'pc', ?, 1, 1)", (json.dumps(BLENDER_4_2),))
    old.commit()
    old.close()

    store = Store(f"sqlite:///{path}")
    try:
        assert store.check_token("hfw_old", "worker")
        assert store.get(2)["outputs"] == [{"name": "frame_0001.png", "sha256": "d" * 64, "size": 10}]
        assert store.get(1)["warnings"] == []
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT blender FROM workers WHERE id = 'w_old'").scalar() == 4_002_003
        newest = store.submit(SPEC, 0, 1, None)
        assert newest == 3, "ids go on from the old ones"
        assert store.claim(store.register_worker("pc", {})).job_id == 1
    finally:
        store.close()


def test_job_ends_become_webhook_deliveries_taken_once_by_each_of_two_processes(db_url, clock):
    first = Store(db_url, clock=clock, webhook_url="https://app.example.com/hook")
    second = Store(db_url, clock=clock, webhook_url="https://app.example.com/hook")
    try:
        worker = first.register_worker("pc", BLENDER_4_2)
        done = first.submit({**SPEC, "webhook_url": "https://app.example.com/own"}, 0, 3, "a")
        claimed = first.claim(worker)
        first.complete(done, claimed.lease_id, [], {})
        canceled = first.submit(SPEC, 0, 3, None)
        first.cancel(canceled)
        taken: list = []
        threads = [threading.Thread(target=lambda s=s: taken.extend(s.due_webhooks())) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted((row.job_id, row.event, row.url) for row in taken) == [
            (done, "job.done", "https://app.example.com/hook"), (done, "job.done", "https://app.example.com/own"),
            (canceled, "job.canceled", "https://app.example.com/hook")]
        assert json.loads(taken[0].body)["job"]["state"] in ("done", "canceled")
        assert first.due_webhooks() == []  # held by whoever took them
        row = next(r for r in taken if r.job_id == canceled)
        first.webhook_sent(row.id, "the webhook answered 500", clock.now + 10)
        clock.now += 11
        again = second.due_webhooks()
        assert [(r.id, r.attempts) for r in again] == [(row.id, 2)]
        second.webhook_sent(row.id, None, None)
        assert second.webhook_deliveries(canceled)[0]["delivered"] is not None
    finally:
        first.close()
        second.close()


def test_pages_and_changes_on_every_engine(store, clock):
    ids = []
    for _ in range(5):
        clock.now += 1
        ids.append(str(store.submit(SPEC, 0, 3, None)))
    page, cursor = store.list_jobs(limit=2)
    rest, end = store.list_jobs(limit=10, cursor=cursor)
    assert [j["id"] for j in page + rest] == ids[::-1] and end is None
    since = clock.now
    clock.now += 1
    store.cancel(int(ids[1]))
    store.cancel(int(ids[3]))
    changed, cursor = store.list_jobs(limit=1, updated_since=since)
    more, end = store.list_jobs(limit=1, cursor=cursor)
    assert [j["id"] for j in changed + more] == [ids[1], ids[3]] and end is None


def test_retention_picks_what_is_due_on_every_engine(db_url, clock):
    store = Store(db_url, clock=clock, keep_failed=3600, keep_outputs=86400)
    try:
        worker = store.register_worker("pc", BLENDER_4_2)
        ends = {}
        for end in ("done", "canceled"):
            job = store.submit(SPEC, 0, 3, None)
            claimed = store.claim(worker)
            store.add_output(job, claimed.lease_id, "frame_0001.png", "c" * 64, 10)
            if end == "done":
                store.complete(job, claimed.lease_id, ["frame_0001.png"], {})
            else:
                store.cancel(job)
            ends[end] = job
        assert store.expired_outputs() == {}
        clock.now += 3601
        assert store.expired_outputs() == {ends["canceled"]: ["frame_0001.png"]}
        store.outputs_removed([ends["canceled"]])
        assert store.get(ends["canceled"])["outputs_deleted"] == clock.now
        clock.now += 86400
        assert store.expired_outputs() == {ends["done"]: ["frame_0001.png"]}
    finally:
        store.close()


def test_a_submission_with_an_idempotency_key_makes_one_job(db_url, clock):
    """Two server processes get the same keyed submission at once, then once more: one job, the same id."""
    stores = [Store(db_url, clock=clock) for _ in range(2)]
    try:
        barrier = threading.Barrier(2)
        answers = []

        def submit(store):
            barrier.wait()
            answers.append(store.submit_view(SPEC, 0, 3, None, ("retry-1", "a" * 64)))

        threads = [threading.Thread(target=submit, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        again, made = stores[0].submit_view(SPEC, 0, 3, None, ("retry-1", "a" * 64))
        assert sorted(made for _, made in answers) == [False, True] and not made
        assert {view["id"] for view, _ in answers} == {again["id"]}
        assert stores[0].counts() == {"queued": 1}
        with pytest.raises(KeyReused, match="retry-1"):
            stores[1].submit_view(SPEC, 0, 3, None, ("retry-1", "b" * 64))
        clock.now += 86400
        assert stores[0].forget_idempotency_keys(clock.now - 3600) == 1
        assert stores[0].submit_view(SPEC, 0, 3, None, ("retry-1", "b" * 64))[1], "a forgotten key is new"
    finally:
        for store in stores:
            store.close()


def test_each_attempt_is_kept_for_the_timeline_and_the_workers_day(store, clock):
    """Every way an attempt ends leaves one row: given back, failed and retried, gone silent, done; and a job
    canceled while rendering. A worker's day counts its done jobs and their GPU energy."""
    pc, other = store.register_worker("pc", {}), store.register_worker("laptop", {})
    job = store.submit(SPEC, 0, 3, "scene one")
    start = clock.now
    lease = store.claim(pc)
    store.heartbeat(job, lease.lease_id, {"frames_done": 1, "frame_count": 4})
    clock.now += 5
    store.release(job, lease.lease_id, "the owner started a game")
    lease = store.claim(pc)
    clock.now += 5
    store.fail(job, lease.lease_id, "Blender crashed: out of memory", "", retryable=True)
    lease = store.claim(other)
    store.heartbeat(job, lease.lease_id, {"frames_done": 2, "frame_count": 4})
    clock.now += 61
    assert store.expire_leases() == 1
    lease = store.claim(pc)
    store.add_output(job, lease.lease_id, "frame_0001.png", "b" * 64, 10)
    clock.now += 1
    store.complete(job, lease.lease_id, ["frame_0001.png"], {"render_s": 2.5, "gpu_energy_wh": 0.75})
    timeline = store.attempts_of(job)
    assert [(a["outcome"], a["worker"], a["attempt"]) for a in timeline] == [
        ("released", "pc", 1), ("retried", "pc", 1), ("expired", "laptop", 2), ("done", "pc", 3)]
    assert timeline[0]["frames_done"] == 1 and timeline[0]["reason"] == "the owner started a game"
    assert timeline[1]["reason"] == "Blender crashed: out of memory"
    assert (timeline[2]["frames_done"], timeline[2]["frame_count"]) == (2, 4)
    assert timeline[3]["render_s"] == 2.5 and timeline[3]["energy_wh"] == 0.75 and timeline[3]["uploaded"] == 1
    assert all(a["claimed"] <= a["ended"] for a in timeline)

    canceled = store.submit(SPEC, 0, 3, None)
    lease = store.claim(other)
    store.cancel(canceled)
    assert [a["outcome"] for a in store.attempts_of(canceled)] == ["canceled"]
    assert store.attempts_of(store.submit(SPEC, 0, 3, None)) == [], "a job never claimed has no attempt"
    assert store.worker_days(start) == {"pc": (1, 0.75)}
    assert store.worker_days(clock.now + 1) == {}


def test_jobs_are_found_by_worker_and_by_words_on_every_engine(store):
    pc, other = store.register_worker("pc", {}), store.register_worker("laptop", {})
    spaceship = store.submit(SPEC, 0, 3, "Spaceship 100%_final")
    lease = store.claim(pc)
    store.fail(spaceship, lease.lease_id, "Blender crashed", "", retryable=True)  # back in the queue, no worker
    lease = store.claim(other)
    store.complete(spaceship, lease.lease_id, [], {})
    teapot = store.submit(SPEC, 0, 3, "teapot")
    store.claim(pc)
    store.submit(SPEC, 0, 3, "never claimed")

    def found(**filters):
        return sorted(int(job["id"]) for job in store.list_jobs(limit=50, **filters)[0])

    assert found(worker="pc") == sorted([spaceship, teapot]), "a job counts for every worker that tried it"
    assert found(worker="laptop") == [spaceship]
    assert found(worker="nobody") == []
    assert found(text="SPACESHIP") == [spaceship], "case does not matter"
    assert found(text="100%_") == [spaceship] and found(text="0%x") == [], "% and _ are themselves"
    assert found(text="crashed") == [], "a done job's old reason is gone"
    assert found(text=str(teapot)) == [teapot]
    assert found(text="teapot", state="done") == []
