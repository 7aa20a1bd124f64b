"""Tests of swarmkey_locust against a small swarmkey API served from this
process (http.server, no mock library).

Run from this folder (from the repository root, `locust/` would be taken for
Locust's package name): cd locust && /usr/bin/python3 -m unittest -v
"""

import locust  # noqa: F401  (first: gevent's monkey patching)

import io
import json
import logging
import os
import sys
import tempfile
import threading
import time
import unittest
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swarmkey_locust as sk  # noqa: E402

TOKEN = "skr_" + "t0ken" * 6
KEY_1 = "key-one-" + "a" * 24
KEY_2 = "key-two-" + "b" * 24
PG_PASSWORD = "pg-" + "c" * 29


class FakeSwarmkey:
    """The runner API of the contract, plus /target: an HTTP service that
    accepts only the "api" policy's current key."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []  # (method, path, body)
        self.policies = {
            "api": {"version": "v1", "fields": {"api_key": KEY_1, "key_id": "k1"}},
            "pg": {"version": "p1", "fields": {"username": "loadtest", "password": PG_PASSWORD}},
            "secret-ungranted": {"version": "x1", "fields": {"value": "nope"}},
        }
        self.granted = {"api", "pg"}
        self.leases = {}  # id -> {"ended": bool, "expired": bool}
        self.refuse_leases = None  # (status, message)
        self.throttle = 0  # credential reads still to answer 429
        self.batch = True  # False: an older server, without POST /v1/credentials
        self.burst = 100  # the most policies one POST /v1/credentials may ask for
        self.answer_padding = 0  # bytes of padding added to each credential's answer
        server = self
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, doc):
                raw = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                with state.lock:
                    state.calls.append((method, self.path, body, self.headers.get("Authorization")))
                if self.path == "/target":
                    with state.lock:
                        want = "Bearer " + state.policies["api"]["fields"]["api_key"]
                    if self.headers.get("Authorization") == want:
                        return self._send(200, {"ok": True})
                    return self._send(401, {"error": "unknown key"})
                if self.headers.get("Authorization") != "Bearer " + TOKEN:
                    return self._send(401, {"error": "invalid or expired token"})
                parts = self.path.strip("/").split("/")
                with state.lock:
                    if method == "POST" and parts == ["v1", "leases"]:
                        if state.refuse_leases:
                            return self._send(*state.refuse_leases)
                        lid = str(uuid.uuid4())
                        state.leases[lid] = {"ended": False, "expired": False, "body": body}
                        return self._send(201, {"id": lid, "ttl_seconds": body["ttl_seconds"]})
                    if method == "POST" and len(parts) == 4 and parts[:2] == ["v1", "leases"] and parts[3] == "heartbeat":
                        lease = state.leases.get(parts[2])
                        if lease is None:
                            return self._send(404, {"error": "unknown lease"})
                        if lease["ended"] or lease["expired"]:
                            return self._send(410, {"error": "lease expired"})
                        return self._send(200, {"id": parts[2], "expires_at": "2030-01-01T00:00:00Z"})
                    if method == "DELETE" and len(parts) == 3 and parts[:2] == ["v1", "leases"]:
                        lease = state.leases.get(parts[2])
                        if lease is None:
                            return self._send(404, {"error": "unknown lease"})
                        lease["ended"] = True
                        return self._send(200, {"id": parts[2]})
                    read_one = method == "GET" and len(parts) == 4 and parts[:2] == ["v1", "policies"] and parts[3] == "credential"
                    read_many = method == "POST" and parts == ["v1", "credentials"] and state.batch
                    if read_one or read_many:
                        if state.throttle > 0:
                            state.throttle -= 1
                            raw = json.dumps({"error": "token reads credentials faster than its limit"}).encode()
                            self.send_response(429)
                            self.send_header("Retry-After", "1")
                            self.send_header("Content-Length", str(len(raw)))
                            self.end_headers()
                            self.wfile.write(raw)
                            return
                        names = [parts[2]] if read_one else body["policies"]
                        if len(names) > state.burst:
                            return self._send(400, {"error": "policies: %d at once is more than this token may read at once (%d)" % (len(names), state.burst)})
                        # All or none, the first refusal in the order asked.
                        for name in names:
                            if name not in state.policies:
                                return self._send(404, {"error": 'unknown policy "%s"' % name})
                            if name not in state.granted:
                                return self._send(403, {"error": 'this token is not granted policy "%s"' % name})
                        creds = [{"policy": n, "version": state.policies[n]["version"], "fields": state.policies[n]["fields"],
                                  "padding": "x" * state.answer_padding} for n in names]
                        return self._send(200, creds[0] if read_one else {"credentials": creds})
                return self._send(404, {"error": "no such endpoint"})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        del server

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def rotate(self, policy, version, **fields):
        with self.lock:
            self.policies[policy] = {"version": version, "fields": fields}

    def count(self, method, path_part):
        with self.lock:
            return sum(1 for m, p, _, _ in self.calls if m == method and path_part in p)

    def bodies(self, method, path):
        with self.lock:
            return [b for m, p, b, _ in self.calls if m == method and p == path]


class FakeRunner:
    def __init__(self):
        self.quit_called = False

    def quit(self):
        self.quit_called = True


class FakeEnvironment:
    def __init__(self, runner=None):
        self.runner = runner
        self.process_exit_code = None


class Base(unittest.TestCase):
    def setUp(self):
        self.api = FakeSwarmkey()
        self.addCleanup(self.api.stop)
        self.saved_env = dict(os.environ)
        self.addCleanup(self.restore_env)
        for k in list(os.environ):
            if k.startswith("SWARMKEY_") or k.startswith("API_") or k.startswith("PG_"):
                del os.environ[k]
        sk._STATE.reset()
        self.addCleanup(sk._STATE.reset)
        # Every record of every logger, formatted, for the redaction checks.
        self.records = []
        handler = logging.Handler(logging.DEBUG)
        handler.emit = lambda r: self.records.append(r)
        root = logging.getLogger()
        self.saved_level = root.level
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        self.addCleanup(root.removeHandler, handler)
        self.addCleanup(root.setLevel, self.saved_level)

    def restore_env(self):
        os.environ.clear()
        os.environ.update(self.saved_env)

    def use_api(self, **extra):
        os.environ["SWARMKEY_API"] = self.api.url
        os.environ["SWARMKEY_TOKEN"] = TOKEN
        for k, v in extra.items():
            os.environ[k] = v
        sk._STATE.reset()

    def logged(self):
        out = []
        for r in self.records:
            out.append(r.getMessage())
            if r.exc_info:
                out.append(logging.Formatter().formatException(r.exc_info))
        return "\n".join(out)

    def assertNoValueLogged(self):
        text = self.logged()
        for value in (TOKEN, KEY_1, KEY_2, PG_PASSWORD):
            self.assertNotIn(value, text)


class TestLease(Base):
    def test_lifecycle_start_heartbeat_end(self):
        self.use_api(SWARMKEY_USES="api, pg", SWARMKEY_RUN="nightly-soak", SWARMKEY_LEASE_TTL="1500ms")
        env = FakeEnvironment()
        sk._STATE.on_test_start(env)
        self.assertIsNotNone(sk.lease_id())
        lid = sk.lease_id()
        (body,) = self.api.bodies("POST", "/v1/leases")
        self.assertEqual(body["run"], "nightly-soak")
        self.assertEqual(body["uses"], ["api", "pg"])
        self.assertEqual(body["ttl_seconds"], 2, "1.5s rounds up to whole seconds")
        host, _, pid = body["holder"].rpartition(":")
        self.assertTrue(host)
        self.assertEqual(int(pid), os.getpid())

        # TTL 1.5s: a heartbeat every 0.5s.
        time.sleep(1.3)
        beats = self.api.count("POST", "/v1/leases/%s/heartbeat" % lid)
        self.assertGreaterEqual(beats, 2)

        sk._STATE.on_test_stop(env)
        self.assertIsNone(sk.lease_id())
        self.assertEqual(self.api.count("DELETE", "/v1/leases/%s" % lid), 1)
        self.assertTrue(self.api.leases[lid]["ended"])
        after = self.api.count("POST", "/heartbeat")
        time.sleep(0.8)
        self.assertEqual(self.api.count("POST", "/heartbeat"), after, "no heartbeat after the end")

        # quitting after test_stop ends nothing twice; a second test takes a new lease.
        sk._STATE.on_test_stop(env)
        self.assertEqual(self.api.count("DELETE", "/v1/leases/"), 1)
        sk._STATE.on_test_start(env)
        self.assertNotEqual(sk.lease_id(), lid)
        sk._STATE.on_test_stop(env)
        self.assertEqual(env.process_exit_code, None)
        for _, _, _, auth in self.api.calls:
            self.assertEqual(auth, "Bearer " + TOKEN)
        self.assertNoValueLogged()

    def test_expired_lease_is_replaced(self):
        self.use_api(SWARMKEY_USES="api", SWARMKEY_LEASE_TTL="1")
        env = FakeEnvironment()
        sk._STATE.on_test_start(env)
        first = sk.lease_id()
        sk.credential("api")
        self.api.leases[first]["expired"] = True
        deadline = time.time() + 3
        while sk.lease_id() == first and time.time() < deadline:
            time.sleep(0.05)
        self.assertNotEqual(sk.lease_id(), first, "a new lease replaces the expired one")
        self.assertEqual(self.api.count("POST", "/v1/leases"), 2 + self.api.count("POST", "/heartbeat"))
        self.assertIn("no longer live", self.logged())
        # The cache was dropped: credentials may have rotated meanwhile.
        sk.credential("api")
        self.assertEqual(self.api.count("GET", "/credential"), 2)
        sk._STATE.on_test_stop(env)

    def test_worker_takes_no_lease(self):
        from locust.runners import WorkerRunner

        self.use_api(SWARMKEY_USES="api")
        worker = object.__new__(WorkerRunner)
        worker.greenlet = None  # Runner.__del__ looks at it
        sk._STATE.on_test_start(FakeEnvironment(worker))
        self.assertIsNone(sk.lease_id())
        self.assertEqual(self.api.count("POST", "/v1/leases"), 0)
        # ... but reads credentials.
        self.assertEqual(sk.credential("api")["api_key"], KEY_1)

    def test_reads_anew_after_the_lease(self):
        # The init check's read may predate a rotation that ran before the
        # lease took effect: master and workers read again after test_start.
        from locust.runners import WorkerRunner

        worker = object.__new__(WorkerRunner)
        worker.greenlet = None
        for env in (FakeEnvironment(), FakeEnvironment(worker)):
            sk._STATE.reset()
            self.use_api(SWARMKEY_USES="api", SWARMKEY_CACHE_TTL="60s")
            reads = lambda: self.api.count("GET", "/credential") + self.api.count("POST", "/v1/credentials")  # noqa: E731
            before = reads()
            sk._STATE.on_init(env)
            self.api.rotate("api", "v2", api_key=KEY_2)
            sk._STATE.on_test_start(env)
            self.assertEqual(sk.credential("api").version, "v2")
            self.assertEqual(reads(), before + 2)
            sk._STATE.on_test_stop(env)
            self.api.rotate("api", "v1", api_key=KEY_1)

    def test_no_uses_no_lease(self):
        self.use_api()
        sk._STATE.on_test_start(FakeEnvironment())
        self.assertIsNone(sk.lease_id())
        self.assertEqual(self.api.count("POST", "/v1/leases"), 0)
        self.assertIn("SWARMKEY_USES is empty", self.logged())

    def test_under_exec_takes_no_second_lease(self):
        self.use_api(SWARMKEY_USES="api", SWARMKEY_POLICIES="api=API,pg=PG", API_API_KEY=KEY_1, PG_USERNAME="loadtest", PG_PASSWORD=PG_PASSWORD)
        sk._STATE.on_init(FakeEnvironment())
        sk._STATE.on_test_start(FakeEnvironment())
        self.assertIsNone(sk.lease_id())
        cred = sk.credential("pg")
        self.assertEqual(dict(cred), {"username": "loadtest", "password": PG_PASSWORD})
        self.assertEqual(cred.source, "env")
        self.assertEqual(self.api.calls, [], "nothing asks the API under exec")
        self.assertIn("swarmkey exec", self.logged())
        self.assertNoValueLogged()

    def test_refused_lease_stops_the_test(self):
        self.use_api(SWARMKEY_USES="api")
        self.api.refuse_leases = (403, {"error": 'this token may not lease policy "api"'})
        runner = FakeRunner()
        env = FakeEnvironment(runner)
        sk._STATE.on_test_start(env)
        time.sleep(0.05)  # quit runs in its own greenlet
        self.assertTrue(runner.quit_called)
        self.assertEqual(env.process_exit_code, 1)
        self.assertIn('may not lease policy "api"', self.logged())
        self.assertIsNone(sk.lease_id())


class TestPreflight(Base):
    def check_exits(self, want, **env):
        self.use_api(**env)
        with self.assertRaises(SystemExit) as cm:
            sk._STATE.on_init(FakeEnvironment())
        self.assertEqual(cm.exception.code, 1)
        self.assertIn(want, self.logged())
        self.assertNoValueLogged()

    def test_unknown_policy(self):
        self.check_exits('404 unknown policy "nope"', SWARMKEY_USES="api,nope")

    def test_not_granted(self):
        self.check_exits("403 this token is not granted", SWARMKEY_USES="secret-ungranted")

    def test_bad_token(self):
        os.environ["SWARMKEY_TOKEN"] = "wrong"
        self.use_api(SWARMKEY_USES="api", SWARMKEY_TOKEN="skr_wrong_but_secret")
        with self.assertRaises(SystemExit):
            sk._STATE.on_init(FakeEnvironment())
        self.assertIn("401 invalid or expired token", self.logged())
        self.assertNotIn("skr_wrong_but_secret", self.logged())

    def test_unreachable_api(self):
        self.api.stop()
        self.check_exits("connection refused", SWARMKEY_USES="api")

    def test_no_source(self):
        os.environ["SWARMKEY_USES"] = "api"
        sk._STATE.reset()
        with self.assertRaises(SystemExit):
            sk._STATE.on_init(FakeEnvironment())
        self.assertIn("swarmkey exec --policy api", self.logged())

    def test_good(self):
        self.use_api(SWARMKEY_USES="api,pg,tag:perf")
        sk._STATE.on_init(FakeEnvironment())
        self.assertEqual(self.api.bodies("POST", "/v1/credentials"), [{"policies": ["api", "pg"]}], "one request for both")
        self.assertEqual(self.api.count("GET", "/credential"), 0)
        self.assertEqual(sk.credential("api")["api_key"], KEY_1)
        self.assertEqual(sk.credential("pg")["password"], PG_PASSWORD)
        self.assertEqual(self.api.count("GET", "/credential"), 0, "init warmed the cache")
        self.assertEqual(self.api.count("POST", "/v1/credentials"), 1)
        self.assertNoValueLogged()

    def test_older_server_is_read_one_policy_at_a_time(self):
        self.api.batch = False
        self.use_api(SWARMKEY_USES="api,pg")
        sk._STATE.on_init(FakeEnvironment())
        self.assertEqual(self.api.count("POST", "/v1/credentials"), 1)
        self.assertEqual(self.api.count("GET", "/credential"), 2)
        sk.credential("pg")
        self.assertEqual(self.api.count("GET", "/credential"), 2, "init warmed the cache")
        self.check_exits('404 unknown policy "nope"', SWARMKEY_USES="api,nope")

    def test_a_batch_the_token_may_not_read_at_once_is_read_one_policy_at_a_time(self):
        self.api.burst = 1
        self.use_api(SWARMKEY_USES="api,pg")
        sk._STATE.on_init(FakeEnvironment())
        self.assertEqual(self.api.count("GET", "/credential"), 2)
        self.assertEqual(sk.credential("api")["api_key"], KEY_1)

    def test_batches_of_at_most_the_api_bound(self):
        saved = sk.MAX_CREDENTIALS_PER_REQUEST
        sk.MAX_CREDENTIALS_PER_REQUEST = 1
        self.addCleanup(setattr, sk, "MAX_CREDENTIALS_PER_REQUEST", saved)
        self.use_api(SWARMKEY_USES="api,pg,api")
        sk._STATE.on_init(FakeEnvironment())
        self.assertEqual(self.api.bodies("POST", "/v1/credentials"), [{"policies": ["api"]}, {"policies": ["pg"]}])

    def test_batch_waits_out_the_read_limit(self):
        self.api.throttle = 1
        self.use_api(SWARMKEY_USES="api,pg")
        sk._STATE.on_init(FakeEnvironment())
        self.assertEqual(self.api.count("POST", "/v1/credentials"), 2, "sent again after Retry-After")
        self.assertEqual(self.api.count("GET", "/credential"), 0)

    def test_refused_batch_is_none_of_it(self):
        self.check_exits('403 this token is not granted policy "secret-ungranted"', SWARMKEY_USES="api,secret-ungranted")
        self.assertEqual(self.api.count("GET", "/credential"), 0)
        sk._STATE.reset()
        self.use_api()
        self.assertEqual(sk.credential("api")["api_key"], KEY_1)
        self.assertEqual(self.api.count("GET", "/credential"), 1, "nothing of the refused batch was cached")

    def test_answers_are_capped_per_credential(self):
        saved = sk.ANSWER_BYTES
        sk.ANSWER_BYTES = 4096
        self.addCleanup(setattr, sk, "ANSWER_BYTES", saved)
        self.api.answer_padding = 3000
        self.use_api(SWARMKEY_USES="api,pg")
        sk._STATE.on_init(FakeEnvironment())  # two credentials of 3 KB fit in 2 × 4 KiB
        self.api.answer_padding = 5000
        self.check_exits("the answer is longer than 8192 bytes", SWARMKEY_USES="api,pg")


class TestCredential(Base):
    def test_cache(self):
        self.use_api(SWARMKEY_CACHE_TTL="400ms")
        a = sk.credential("api")
        self.assertEqual(a["api_key"], KEY_1)
        self.assertEqual(a.version, "v1")
        self.assertEqual(a.source, "api")
        self.api.rotate("api", "v2", api_key=KEY_2)
        self.assertEqual(sk.credential("api")["api_key"], KEY_1, "cached")
        self.assertEqual(self.api.count("GET", "/v1/policies/api/credential"), 1)
        time.sleep(0.45)
        b = sk.credential("api")
        self.assertEqual((b["api_key"], b.version), (KEY_2, "v2"))
        self.assertEqual(self.api.count("GET", "/v1/policies/api/credential"), 2)
        sk.credential("api", refresh=True)
        self.assertEqual(self.api.count("GET", "/v1/policies/api/credential"), 3)
        # Policies are cached separately.
        self.assertEqual(sk.credential("pg")["username"], "loadtest")

    def test_concurrent_readers_share_one_read(self):
        import gevent

        self.use_api()
        gs = [gevent.spawn(sk.credential, "api") for _ in range(20)]
        gevent.joinall(gs, raise_error=True)
        self.assertEqual({g.value["api_key"] for g in gs}, {KEY_1})
        self.assertEqual(self.api.count("GET", "/credential"), 1)

    def test_waits_out_the_read_limit(self):
        self.use_api()
        self.api.throttle = 1
        started = time.monotonic()
        self.assertEqual(sk.credential("api")["api_key"], KEY_1)
        self.assertGreaterEqual(time.monotonic() - started, 0.9, "waited Retry-After: 1")
        self.assertEqual(self.api.count("GET", "/credential"), 2)
        self.assertIn("read limit is reached; retrying in 1s", self.logged())

    def test_gives_up_on_the_read_limit(self):
        self.use_api()
        self.api.throttle = 100
        saved = sk.RATE_LIMIT_WAIT
        sk.RATE_LIMIT_WAIT = 0.3
        self.addCleanup(setattr, sk, "RATE_LIMIT_WAIT", saved)
        with self.assertRaises(sk.APIError) as cm:
            sk.credential("api")
        self.assertEqual(cm.exception.status, 429)
        self.assertEqual(cm.exception.retry_after, 1.0)
        self.assertEqual(self.api.count("GET", "/credential"), 2, "one wait of 0.3s, then it gives up")
        self.assertNoValueLogged()

    def test_errors_name_the_policy(self):
        self.use_api()
        with self.assertRaises(sk.APIError) as cm:
            sk.credential("secret-ungranted")
        self.assertEqual(cm.exception.status, 403)
        self.assertIn("secret-ungranted", str(cm.exception))
        self.assertNotIn(TOKEN, str(cm.exception))
        with self.assertRaises(sk.APIError) as cm:
            sk.credential("a/b")
        self.assertIn("/v1/policies/a%2Fb/credential", str(cm.exception), "names are escaped in the path")

    def test_from_exec_environment(self):
        os.environ.update({"SWARMKEY_POLICIES": "checkout-db=PG,api=API,api-admin=API_ADMIN", "PG_USERNAME": "u", "PG_PASSWORD": PG_PASSWORD,
                           "API_API_KEY": KEY_1, "API_KEY_ID": "k1", "API_ADMIN_API_KEY": KEY_2})
        sk._STATE.reset()
        self.assertEqual(dict(sk.credential("checkout-db")), {"username": "u", "password": PG_PASSWORD})
        self.assertEqual(dict(sk.credential("api")), {"api_key": KEY_1, "key_id": "k1"}, "API_ADMIN_* belongs to api-admin")
        self.assertEqual(dict(sk.credential("api-admin")), {"api_key": KEY_2})
        with self.assertRaises(sk.SwarmkeyError) as cm:
            sk.credential("other")
        self.assertIn("other", str(cm.exception))

    def test_default_prefix_without_policies_variable(self):
        self.assertEqual(sk.default_prefix("checkout-db.v2"), "CHECKOUT_DB_V2")
        self.assertEqual(sk.default_prefix("2fa-api"), "_2FA_API")
        os.environ.update({"CHECKOUT_DB_USERNAME": "u", "CHECKOUT_DB_PASSWORD": PG_PASSWORD})
        sk._STATE.reset()
        self.assertEqual(sk.credential("checkout-db")["password"], PG_PASSWORD)

    def test_token_file(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write(TOKEN + "\n")
        self.addCleanup(os.unlink, f.name)
        os.environ.update({"SWARMKEY_API": self.api.url, "SWARMKEY_TOKEN_FILE": f.name})
        sk._STATE.reset()
        self.assertEqual(sk.credential("api")["api_key"], KEY_1)
        os.environ["SWARMKEY_TOKEN"] = TOKEN
        sk._STATE.reset()
        with self.assertRaises(sk.SwarmkeyError) as cm:
            sk.credential("api")
        self.assertIn("both set", str(cm.exception))

    def test_durations(self):
        self.assertEqual(sk.parse_duration("30", "x"), 30)
        self.assertEqual(sk.parse_duration("1m30s", "x"), 90)
        self.assertEqual(sk.parse_duration("250ms", "x"), 0.25)
        with self.assertRaises(sk.SwarmkeyError):
            sk.parse_duration("soon", "SWARMKEY_LEASE_TTL")


class TestFreshCredential(Base):
    def get_target(self, cred):
        return requests.get(self.api.url + "/target", headers={"Authorization": "Bearer " + cred["api_key"]}, timeout=5)

    def test_rereads_once_on_401(self):
        self.use_api(SWARMKEY_CACHE_TTL="60s")
        self.assertEqual(sk.with_fresh_credential("api", self.get_target).status_code, 200)
        self.api.rotate("api", "v2", api_key=KEY_2)
        time.sleep(sk.MIN_REFRESH_INTERVAL)
        r = sk.with_fresh_credential("api", self.get_target)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(self.api.count("GET", "/credential"), 2)
        self.assertEqual(self.api.count("GET", "/target"), 3)
        self.assertIn("version v2", self.logged())
        self.assertNoValueLogged()

    def test_no_retry_when_the_version_is_the_same(self):
        self.use_api(SWARMKEY_CACHE_TTL="60s")
        self.api.rotate("api", "v1", api_key="not-what-target-wants")
        # The target wants the current key; make it want something else.
        sk.credential("api")
        with self.api.lock:
            self.api.policies["api"] = {"version": "v1", "fields": {"api_key": KEY_2}}
        time.sleep(sk.MIN_REFRESH_INTERVAL)
        r = sk.with_fresh_credential("api", self.get_target)
        self.assertEqual(r.status_code, 401)
        self.assertEqual(self.api.count("GET", "/target"), 1, "the same version is not tried twice")

    def test_many_users_one_reread(self):
        import gevent

        self.use_api(SWARMKEY_CACHE_TTL="60s")
        sk.credential("api")
        self.api.rotate("api", "v2", api_key=KEY_2)
        time.sleep(sk.MIN_REFRESH_INTERVAL)
        gs = [gevent.spawn(sk.with_fresh_credential, "api", self.get_target) for _ in range(10)]
        gevent.joinall(gs, raise_error=True)
        self.assertEqual([g.value.status_code for g in gs], [200] * 10)
        self.assertEqual(self.api.count("GET", "/credential"), 2, "one re-read for all")

    def test_retry_on_exception(self):
        self.use_api(SWARMKEY_CACHE_TTL="60s")

        class AuthFailed(Exception):
            pass

        seen = []

        def connect(cred):
            seen.append(cred.version)
            if cred["password"] != "new-" + PG_PASSWORD:
                raise AuthFailed("password authentication failed for user loadtest")
            return "connected"

        sk.credential("pg")
        self.api.rotate("pg", "p2", username="loadtest", password="new-" + PG_PASSWORD)
        time.sleep(sk.MIN_REFRESH_INTERVAL)
        self.assertEqual(sk.with_fresh_credential("pg", connect, retry_on=(AuthFailed,)), "connected")
        self.assertEqual(seen, ["p1", "p2"])
        # A refusal that a re-read does not change is raised.
        time.sleep(sk.MIN_REFRESH_INTERVAL)
        with self.api.lock:
            self.api.policies["pg"]["fields"]["password"] = "wrong"
        sk.credential("pg", refresh=True)
        with self.assertRaises(AuthFailed):
            sk.with_fresh_credential("pg", connect, retry_on=(AuthFailed,))

    def test_swarmkey_auth_with_requests(self):
        self.use_api(SWARMKEY_CACHE_TTL="60s")
        s = requests.Session()
        self.assertEqual(s.get(self.api.url + "/target", auth=sk.SwarmkeyAuth("api")).status_code, 200)
        self.api.rotate("api", "v2", api_key=KEY_2)
        time.sleep(sk.MIN_REFRESH_INTERVAL)
        r = s.get(self.api.url + "/target", auth=sk.SwarmkeyAuth("api"))
        self.assertEqual(r.status_code, 200)
        self.assertEqual([h.status_code for h in r.history], [401])
        self.assertEqual(self.api.count("GET", "/target"), 3)
        self.assertNoValueLogged()

    def test_swarmkey_auth_reports_one_request_to_locust(self):
        from locust.clients import HttpSession
        from locust.event import EventHook

        events = []
        hook = EventHook()
        hook.add_listener(lambda **kw: events.append(kw))
        self.use_api(SWARMKEY_CACHE_TTL="60s")
        client = HttpSession(self.api.url, hook, None)
        sk.credential("api")
        self.api.rotate("api", "v2", api_key=KEY_2)
        time.sleep(sk.MIN_REFRESH_INTERVAL)
        client.get("/target", auth=sk.SwarmkeyAuth("api"))
        self.assertEqual(len(events), 1)
        self.assertIsNone(events[0]["exception"], "the refused first send is not a failure")
        self.assertEqual(self.api.count("GET", "/target"), 2)

    def test_swarmkey_auth_header_and_apply(self):
        self.use_api()
        captured = []

        def apply(req, cred):
            captured.append(cred.version)
            req.headers["X-Api-Key"] = cred["api_key"]

        req = requests.Request("GET", self.api.url + "/x", auth=sk.SwarmkeyAuth("api", apply=apply)).prepare()
        self.assertEqual(req.headers["X-Api-Key"], KEY_1)
        req = requests.Request("GET", self.api.url + "/x", auth=sk.SwarmkeyAuth("pg", field="password", header="X-Pw", prefix="")).prepare()
        self.assertEqual(req.headers["X-Pw"], PG_PASSWORD)
        with self.assertRaises(sk.SwarmkeyError) as cm:
            requests.Request("GET", self.api.url + "/x", auth=sk.SwarmkeyAuth("pg")).prepare()
        self.assertIn("no field 'api_key'", str(cm.exception))
        self.assertNotIn(PG_PASSWORD, str(cm.exception))


class TestRedaction(Base):
    def test_reprs_hold_no_value(self):
        self.use_api(SWARMKEY_USES="api")
        cred = sk.credential("pg")
        for text in (repr(cred), str(cred), "%s" % (cred,), "%r" % (cred,), f"{cred}", f"{cred!r}", "{}".format(cred),
                     repr(sk._STATE.config), repr(sk._STATE.client), repr(sk.SwarmkeyAuth("api")), repr([cred]), repr({"c": cred})):
            self.assertNotIn(PG_PASSWORD, text)
            self.assertNotIn(TOKEN, text)
        self.assertIn("password", repr(cred), "field names are shown")
        self.assertIn("REDACTED", repr(cred))

    def test_no_value_in_any_log_record(self):
        self.use_api(SWARMKEY_USES="api,pg", SWARMKEY_LEASE_TTL="1", SWARMKEY_CACHE_TTL="60s")
        logging.getLogger("swarmkey").debug("a credential: %s", sk.credential("pg"))
        sk._STATE.on_init(FakeEnvironment())
        sk._STATE.on_test_start(FakeEnvironment())
        s = requests.Session()
        s.get(self.api.url + "/target", auth=sk.SwarmkeyAuth("api"))
        self.api.rotate("api", "v2", api_key=KEY_2)
        time.sleep(sk.MIN_REFRESH_INTERVAL)
        s.get(self.api.url + "/target", auth=sk.SwarmkeyAuth("api"))
        self.api.leases[sk.lease_id()]["expired"] = True
        time.sleep(0.8)
        sk._STATE.on_test_stop(FakeEnvironment())
        self.assertGreater(len(self.records), 3)
        self.assertNoValueLogged()
        # And in the handlers' own formatting, with arguments and all.
        buf = io.StringIO()
        h = logging.StreamHandler(buf)
        h.setFormatter(logging.Formatter("%(name)s %(message)s"))
        for r in self.records:
            h.emit(r)
        for value in (TOKEN, KEY_1, KEY_2, PG_PASSWORD):
            self.assertNotIn(value, buf.getvalue())


if __name__ == "__main__":
    unittest.main()
