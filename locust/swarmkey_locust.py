"""swarmkey for locustfiles: credentials from the store, a live lease per run.

Import it from a locustfile::

    import swarmkey_locust
    from swarmkey_locust import credential, SwarmkeyAuth

    class Api(HttpUser):
        @task
        def orders(self):
            self.client.get("/orders", auth=SwarmkeyAuth("checkout-api"))

What it does, configured from the environment:

* Under ``swarmkey exec --policy NAME[=PREFIX]`` the child's environment holds
  each policy's fields (``PREFIX_USERNAME``, ``PREFIX_API_KEY``, ...) and
  ``SWARMKEY_POLICIES=name=PREFIX,...``; exec holds the lease, so this module
  takes none and ``credential(NAME)`` reads the environment.
* Otherwise, with ``SWARMKEY_API`` (``http://host:port``, ``https://...`` or
  ``unix:/path/to/socket``) and ``SWARMKEY_TOKEN`` or ``SWARMKEY_TOKEN_FILE``
  (a runner token), ``credential(NAME)`` reads the policy's current version
  from the API and caches it for ``SWARMKEY_CACHE_TTL`` (default 5s). The
  master (or a local run) takes a lease at ``test_start`` on the policies in
  ``SWARMKEY_USES`` (comma separated) for the run ``SWARMKEY_RUN`` (default
  ``locust``) with ``SWARMKEY_LEASE_TTL`` (default 30s), heartbeats it every
  third of its TTL and ends it at ``test_stop`` or ``quitting``. Workers never
  take a lease; they read credentials like a local run. Without
  ``SWARMKEY_USES`` no lease is taken (a warning says so).
* Before the test starts (Locust's ``init`` event) the master, a local run and
  every worker read the credential of each policy in ``SWARMKEY_USES`` once, in
  one request for up to 100 policies (``POST /v1/credentials``; one request a
  policy from a server older than that): an unknown policy, a token without a
  grant, an expired token or an unreachable API stops Locust with exit code 1
  and a message saying which and why.
* The API limits each token's credential reads; a read refused for the limit
  (429) is sent again after the API's Retry-After, for at most a minute in
  all, so many workers starting at once with one token take turns.

Values never reach a log record, an exception message or a repr: a
``Credential`` prints as its policy, version and field names only.

Works with Locust 2.12 (Debian's python3-locust) and current Locust; it uses
the standard library, Locust, gevent and requests (both Locust dependencies).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse

__all__ = [
    "APIError",
    "Credential",
    "SwarmkeyAuth",
    "SwarmkeyError",
    "configure",
    "credential",
    "default_prefix",
    "lease_id",
    "with_fresh_credential",
]

log = logging.getLogger("swarmkey")

#: HTTP statuses that mean "this credential is not (or no longer) accepted".
AUTH_FAILURE_STATUSES = (401, 403)

# A credential re-read after an auth failure is not re-read again within this
# long: a thousand users meeting the same 401 make one API call, and a key
# that is simply wrong does not turn every request into two API calls.
MIN_REFRESH_INTERVAL = 1.0

# The API limits each token's credential reads (429 with Retry-After): many
# workers starting at once wait their turn, each wait at most
# MAX_RETRY_AFTER, in all at most RATE_LIMIT_WAIT, then the read fails.
MAX_RETRY_AFTER = 10.0
RATE_LIMIT_WAIT = 60.0

# An answer of the API is refused past this many bytes a credential.
ANSWER_BYTES = 1 << 20

# The most policies one POST /v1/credentials may ask for (the API's bound).
MAX_CREDENTIALS_PER_REQUEST = 100


class SwarmkeyError(Exception):
    """A configuration, API or lease problem. Messages never hold a value."""


class APIError(SwarmkeyError):
    """The swarmkey API answered with an error status."""

    def __init__(self, message: str, status: int, api_message: str = ""):
        super().__init__(message)
        self.status = status
        #: The API's own error message ({"error": ...}), without the request.
        self.api_message = api_message
        #: Seconds a 429 asks to wait (its Retry-After), else None.
        self.retry_after = None


def is_no_such_endpoint(e: BaseException) -> bool:
    """Whether e is the API's answer to a route it does not have: a server
    of an older swarmkey."""
    return isinstance(e, APIError) and e.status == 404 and e.api_message.startswith("no such endpoint")


class Credential(dict):
    """The fields of one policy's current secret (``username``, ``password``,
    ``api_key``, ...), read like a dict: ``cred["api_key"]``.

    ``policy``, ``version`` (the store's version id, or None from the
    environment) and ``source`` (``"env"`` or ``"api"``) say where it came
    from. ``str``/``repr`` show those and the field names, never a value, so
    logging a credential by mistake leaks nothing.
    """

    def __init__(self, policy: str, fields: dict, version=None, source: str = "api"):
        super().__init__(fields)
        self.policy = policy
        self.version = version
        self.source = source

    def __repr__(self) -> str:
        return "<Credential policy=%s version=%s source=%s fields=%s values=[REDACTED]>" % (
            self.policy,
            self.version,
            self.source,
            ",".join(sorted(self)),
        )

    __str__ = __repr__

    def __format__(self, spec) -> str:
        return format(repr(self), spec)


def default_prefix(policy: str) -> str:
    """The environment prefix ``swarmkey exec`` uses for a policy when none is
    given: the name upper-cased, every byte but A-Z and 0-9 ``_``, and a
    leading ``_`` before a digit (``checkout-db`` -> ``CHECKOUT_DB``,
    ``2fa`` -> ``_2FA``)."""
    out = "".join(chr(c) if (65 <= c <= 90 or 48 <= c <= 57) else "_" for c in policy.upper().encode("utf-8"))
    return "_" + out if out[:1].isdigit() else out


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str, name: str) -> float:
    """Seconds in ``text``: a number of seconds ("30") or a Go duration
    ("30s", "1m30s", "500ms")."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise SwarmkeyError("%s: %r is not a duration: give seconds (30) or a Go duration (30s, 2m)" % (name, text))
    return total


def _split(text: str):
    return [p for p in re.split(r"[,\s]+", text or "") if p]


class Config:
    """Settings read from the environment; ``configure()`` overrides them."""

    def __init__(self, env=None):
        env = os.environ if env is None else env
        self.env = env
        self.api = env.get("SWARMKEY_API", "").strip()
        self.token_source = ""
        token, token_file = env.get("SWARMKEY_TOKEN", ""), env.get("SWARMKEY_TOKEN_FILE", "")
        if token and token_file:
            raise SwarmkeyError("SWARMKEY_TOKEN and SWARMKEY_TOKEN_FILE are both set: give one")
        self._token = token.strip()
        if token:
            self.token_source = "SWARMKEY_TOKEN"
        if token_file:
            self.token_source = "SWARMKEY_TOKEN_FILE (%s)" % token_file
            try:
                with open(token_file, encoding="utf-8") as f:
                    self._token = f.read().strip()
            except OSError as e:
                raise SwarmkeyError("SWARMKEY_TOKEN_FILE: cannot read %s: %s" % (token_file, e.strerror or e)) from None
            if not self._token:
                raise SwarmkeyError("SWARMKEY_TOKEN_FILE: %s is empty" % token_file)
        self.ca_file = env.get("SWARMKEY_CA_FILE", "") or None
        self.run = env.get("SWARMKEY_RUN", "").strip() or "locust"
        self.uses = _split(env.get("SWARMKEY_USES", ""))
        self.lease_ttl = parse_duration(env.get("SWARMKEY_LEASE_TTL", "") or "30s", "SWARMKEY_LEASE_TTL")
        self.cache_ttl = parse_duration(env.get("SWARMKEY_CACHE_TTL", "") or "5s", "SWARMKEY_CACHE_TTL")
        self.timeout = parse_duration(env.get("SWARMKEY_TIMEOUT", "") or "10s", "SWARMKEY_TIMEOUT")
        if self.lease_ttl < 1:
            raise SwarmkeyError("SWARMKEY_LEASE_TTL: %r is too short: give at least 1s" % env.get("SWARMKEY_LEASE_TTL"))
        self.exec_prefixes = {}
        spec = env.get("SWARMKEY_POLICIES", "")
        self.under_exec = bool(spec.strip()) or bool(env.get("SWARMKEY_LEASE_ID", "").strip())
        for item in _split(spec):
            name, sep, prefix = item.partition("=")
            self.exec_prefixes[name] = prefix if sep and prefix else default_prefix(name)

    def __repr__(self) -> str:
        return "<swarmkey Config api=%s token=%s run=%s uses=%s>" % (
            self.api or "-",
            "[REDACTED]" if self._token else "-",
            self.run,
            ",".join(self.uses),
        )

    @property
    def token(self) -> str:
        return self._token

    def env_prefix(self, policy: str):
        """The prefix under which the environment holds policy's fields, or
        None when the environment is not the source for it.

        Under swarmkey exec with SWARMKEY_POLICIES, exactly the policies it
        lists. Otherwise, under exec (SWARMKEY_LEASE_ID alone) or when no API
        is configured, the default prefix if any variable carries it. With an
        API and no exec, never: an unrelated API_URL must not pass for policy
        "api"'s fields.
        """
        if self.under_exec and self.exec_prefixes:
            return self.exec_prefixes.get(policy)
        if self.api and not self.under_exec:
            return None
        prefix = default_prefix(policy)
        return prefix if any(k.startswith(prefix + "_") for k in self.env) else None

    def fields_from_env(self, policy: str, prefix: str) -> dict:
        # A longer prefix of another policy (API_ADMIN beside API) owns its
        # own variables.
        others = [p for p in self.exec_prefixes.values() if p != prefix and p.startswith(prefix + "_")]
        fields = {}
        for k, v in self.env.items():
            if k.startswith(prefix + "_") and not any(k.startswith(o + "_") for o in others):
                fields[k[len(prefix) + 1 :].lower()] = v
        return fields


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class Client:
    """A small client of the swarmkey runner API."""

    def __init__(self, base: str, token: str, timeout: float = 10.0, ca_file=None):
        if not token:
            raise SwarmkeyError("SWARMKEY_API is set but no token is: set SWARMKEY_TOKEN or SWARMKEY_TOKEN_FILE to a runner token")
        self.base = base
        self._token = token
        self.timeout = timeout
        if base.startswith("unix:"):
            self._unix, self._https, self._host, self._prefix = base[len("unix:") :], False, "", ""
            if not self._unix:
                raise SwarmkeyError("SWARMKEY_API: %r names no socket: give unix:/path/to/socket" % base)
        else:
            u = urllib.parse.urlsplit(base)
            if u.scheme not in ("http", "https") or not u.netloc:
                raise SwarmkeyError("SWARMKEY_API: %r is not an API address: give http://host:port, https://host:port or unix:/path" % base)
            self._unix, self._https, self._host, self._prefix = "", u.scheme == "https", u.netloc, u.path.rstrip("/")
        self._ssl = ssl.create_default_context(cafile=ca_file) if self._https else None

    def __repr__(self) -> str:
        return "<swarmkey Client %s>" % self.base

    def _connection(self):
        if self._unix:
            return _UnixHTTPConnection(self._unix, self.timeout)
        if self._https:
            return http.client.HTTPSConnection(self._host, timeout=self.timeout, context=self._ssl)
        return http.client.HTTPConnection(self._host, timeout=self.timeout)

    def request(self, method: str, path: str, body=None, read=None, max_answer=ANSWER_BYTES):
        """Send one request; return the decoded JSON object of a 2xx answer,
        raise APIError (with the API's error message) otherwise. A read (a
        GET, or ``read=True``) answered 429 is sent again after its
        Retry-After (see RATE_LIMIT_WAIT). An answer longer than
        ``max_answer`` bytes is refused."""
        if read is None:
            read = method == "GET"
        waited = 0.0
        while True:
            try:
                return self._request(method, path, body, max_answer)
            except APIError as e:
                if e.status != 429 or not read or waited >= RATE_LIMIT_WAIT:
                    raise
                wait = min(e.retry_after or 1.0, MAX_RETRY_AFTER, RATE_LIMIT_WAIT - waited)
                log.warning("swarmkey: %s %s: the token's read limit is reached; retrying in %gs", method, path, wait)
                time.sleep(wait)
                waited += wait

    def _request(self, method: str, path: str, body=None, max_answer=ANSWER_BYTES):
        headers = {"Authorization": "Bearer " + self._token, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = self._connection()
        try:
            conn.request(method, self._prefix + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read(max_answer + 1)
            status = resp.status
            retry_after = resp.getheader("Retry-After")
        except (OSError, http.client.HTTPException) as e:
            raise SwarmkeyError("swarmkey API at %s: %s %s: %s" % (self.base, method, path, _describe(e))) from None
        finally:
            conn.close()
        if len(raw) > max_answer:
            raise SwarmkeyError("swarmkey API at %s: %s %s: the answer is longer than %d bytes" % (self.base, method, path, max_answer))
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = None
        if 200 <= status < 300:
            if not isinstance(doc, dict):
                raise SwarmkeyError("swarmkey API at %s: %s %s: the answer is not a JSON object" % (self.base, method, path))
            return doc
        # An error body is {"error": "..."}; it never holds a value. Anything
        # else is not shown (it could be a proxy's page, or worse).
        msg = doc.get("error") if isinstance(doc, dict) and isinstance(doc.get("error"), str) else "HTTP %d" % status
        err = APIError("swarmkey API at %s: %s %s: %d %s" % (self.base, method, path, status, msg[:500]), status, msg[:500])
        try:
            err.retry_after = max(0.0, float(retry_after)) if retry_after else None
        except ValueError:
            pass
        raise err

    def credential(self, policy: str) -> Credential:
        doc = self.request("GET", "/v1/policies/%s/credential" % urllib.parse.quote(policy, safe=""))
        fields = doc.get("fields")
        if not isinstance(fields, dict):
            raise SwarmkeyError("swarmkey API at %s: the credential of policy %r has no fields object" % (self.base, policy))
        return Credential(policy, fields, version=doc.get("version"), source="api")

    def credentials(self, policies) -> list:
        """The credentials of ``policies`` (at most MAX_CREDENTIALS_PER_REQUEST)
        in one request, POST /v1/credentials, in the order asked: all of
        them, or APIError and none. A server older than that endpoint
        answers 404 "no such endpoint" (see is_no_such_endpoint)."""
        policies = list(policies)
        doc = self.request("POST", "/v1/credentials", {"policies": policies}, read=True,
                           max_answer=ANSWER_BYTES * max(1, len(policies)))
        got = doc.get("credentials")
        if not isinstance(got, list) or len(got) != len(policies):
            raise SwarmkeyError("swarmkey API at %s: POST /v1/credentials: no credential list of %d: is it a swarmkey API?" % (self.base, len(policies)))
        out = []
        for policy, c in zip(policies, got):
            fields = c.get("fields") if isinstance(c, dict) else None
            if not isinstance(c, dict) or c.get("policy") != policy or not isinstance(fields, dict):
                raise SwarmkeyError("swarmkey API at %s: POST /v1/credentials: the answer for policy %r is not its credential" % (self.base, policy))
            out.append(Credential(policy, fields, version=c.get("version"), source="api"))
        return out

    def start_lease(self, run: str, uses, holder: str, ttl: float) -> str:
        doc = self.request("POST", "/v1/leases", {"run": run, "uses": list(uses), "holder": holder, "ttl_seconds": int(-(-ttl // 1))})
        if not isinstance(doc.get("id"), str) or not doc["id"]:
            raise SwarmkeyError("swarmkey API at %s: the new lease has no id" % self.base)
        return doc["id"]

    def heartbeat(self, lease: str):
        return self.request("POST", "/v1/leases/%s/heartbeat" % urllib.parse.quote(lease, safe=""))

    def end_lease(self, lease: str):
        return self.request("DELETE", "/v1/leases/%s" % urllib.parse.quote(lease, safe=""))


def _describe(e: BaseException) -> str:
    if isinstance(e, socket.timeout):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused (is swarmkey serve running with --api-listen?)"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return type(e).__name__


def _spawn(fn, *args):
    try:
        import gevent

        return gevent.spawn(fn, *args)
    except ImportError:  # pragma: no cover - Locust always brings gevent
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        return t


def _sleep(seconds: float):
    try:
        import gevent

        gevent.sleep(seconds)
    except ImportError:  # pragma: no cover
        time.sleep(seconds)


class _Lease:
    """One live lease, heartbeated from a greenlet until ended."""

    def __init__(self, client: Client, run: str, uses, ttl: float, holder: str):
        self.client, self.run, self.uses, self.ttl, self.holder = client, run, list(uses), ttl, holder
        self.id = None
        self._stopped = False
        self._beater = None
        self.lost = False

    @property
    def interval(self) -> float:
        return max(self.ttl / 3.0, 0.2)

    def start(self):
        self.id = self.client.start_lease(self.run, self.uses, self.holder, self.ttl)
        log.info("swarmkey: took lease %s on %s for run %s (ttl %gs)", self.id, ",".join(self.uses), self.run, self.ttl)
        self._beater = _spawn(self._beat)

    def _beat(self):
        while not self._stopped:
            _sleep(self.interval)
            if self._stopped:
                return
            try:
                self.client.heartbeat(self.id)
            except APIError as e:
                if self._stopped:
                    return
                if e.status in (404, 410):
                    # The lease expired (or is gone): a rotation may have
                    # run meanwhile. Take a new one and forget cached values.
                    self.lost = True
                    log.warning("swarmkey: lease %s is no longer live (%d); taking a new one: credentials may have rotated meanwhile", self.id, e.status)
                    _STATE.cache.clear()
                    try:
                        self.id = self.client.start_lease(self.run, self.uses, self.holder, self.ttl)
                        log.info("swarmkey: took lease %s on %s for run %s", self.id, ",".join(self.uses), self.run)
                    except SwarmkeyError as e2:
                        log.error("swarmkey: cannot take a new lease: %s", e2)
                else:
                    log.warning("swarmkey: heartbeat of lease %s failed: %s", self.id, e)
            except SwarmkeyError as e:
                log.warning("swarmkey: heartbeat of lease %s failed: %s (it expires %gs after the last good one)", self.id, e, self.ttl)

    def end(self):
        self._stopped = True
        b, self._beater = self._beater, None
        if b is not None and hasattr(b, "kill"):
            b.kill(block=False)
        if self.id is None:
            return
        try:
            self.client.end_lease(self.id)
            log.info("swarmkey: ended lease %s of run %s", self.id, self.run)
        except APIError as e:
            if e.status not in (404, 410):
                log.warning("swarmkey: cannot end lease %s: %s; it expires by its TTL", self.id, e)
        except SwarmkeyError as e:
            log.warning("swarmkey: cannot end lease %s: %s; it expires by its TTL", self.id, e)


class _Cache:
    """Credentials read from the API, per policy, for ttl seconds. One
    lock per policy: users whose entry expired together wait for one read."""

    def __init__(self):
        self._lock = threading.Lock()
        self._locks = {}
        self._entries = {}

    def _policy_lock(self, policy):
        with self._lock:
            return self._locks.setdefault(policy, threading.Lock())

    def clear(self):
        with self._lock:
            self._entries.clear()

    def get(self, policy, ttl, fetch, refresh=False):
        with self._policy_lock(policy):
            entry = self._entries.get(policy)
            now = time.monotonic()
            if entry is not None and not refresh and now - entry[1] < ttl:
                return entry[0]
            cred = fetch(policy)
            self._entries[policy] = (cred, time.monotonic())
            return cred

    def put(self, cred):
        with self._policy_lock(cred.policy):
            self._entries[cred.policy] = (cred, time.monotonic())

    def after_failure(self, policy, used, fetch):
        """The credential to retry with after ``used`` was refused: the
        cached one if it is another version (someone re-read already) or was
        read less than MIN_REFRESH_INTERVAL ago, else a fresh read."""
        with self._policy_lock(policy):
            entry = self._entries.get(policy)
            if entry is not None:
                cred, at = entry
                if cred.version != used.version or time.monotonic() - at < MIN_REFRESH_INTERVAL:
                    return cred
            cred = fetch(policy)
            self._entries[policy] = (cred, time.monotonic())
            return cred


class _State:
    def __init__(self):
        self.cache = _Cache()
        self._config = None
        self._client = None
        self._overrides = {}
        self.lease = None

    def reset(self):
        """Forget configuration, cache and lease (tests)."""
        if self.lease is not None:
            self.lease.end()
        self.__init__()

    @property
    def config(self) -> Config:
        if self._config is None:
            c = Config()
            for k, v in self._overrides.items():
                setattr(c, k, v)
            self._config = c
        return self._config

    @property
    def client(self):
        c = self.config
        if not c.api:
            return None
        if self._client is None:
            self._client = Client(c.api, c.token, c.timeout, c.ca_file)
        return self._client

    def credential(self, policy: str, refresh: bool = False) -> Credential:
        c = self.config
        prefix = c.env_prefix(policy)
        if prefix is not None:
            fields = c.fields_from_env(policy, prefix)
            if not fields:
                raise SwarmkeyError("policy %r: swarmkey exec set no %s_* variables for it" % (policy, prefix))
            return Credential(policy, fields, version=None, source="env")
        client = self.client
        if client is None:
            raise SwarmkeyError(
                "no credential for policy %r: run Locust under `swarmkey exec --policy %s -- locust ...`, "
                "or set SWARMKEY_API and SWARMKEY_TOKEN (or SWARMKEY_TOKEN_FILE)" % (policy, policy)
            )
        return self.cache.get(policy, c.cache_ttl, client.credential, refresh=refresh)

    def read_ahead(self, policies):
        """Read the credentials of ``policies`` from the API into the cache,
        in requests of up to MAX_CREDENTIALS_PER_REQUEST policies, where the
        environment does not hold them. A server older than the batch read,
        or a token that may read fewer at once than a batch asks (400), is
        read one policy at a time."""
        c = self.config
        wanted = []
        for policy in dict.fromkeys(policies):
            if c.env_prefix(policy) is None:
                wanted.append(policy)
            else:
                self.credential(policy)  # from the environment: checks it is there
        client = self.client
        if client is None:
            for policy in wanted:
                self.credential(policy)  # says why there is no source
            return
        for start in range(0, len(wanted), MAX_CREDENTIALS_PER_REQUEST):
            chunk = wanted[start : start + MAX_CREDENTIALS_PER_REQUEST]
            try:
                creds = client.credentials(chunk)
            except APIError as e:
                # 400 "... may read at once": the token's burst is smaller
                # than the batch. Any other 400 is a fault to report.
                smaller_burst = e.status == 400 and "may read at once" in e.api_message
                if not is_no_such_endpoint(e) and not smaller_burst:
                    raise
                for policy in wanted[start:]:
                    self.credential(policy, refresh=True)
                return
            for cred in creds:
                self.cache.put(cred)

    def credential_after_failure(self, used: Credential) -> Credential:
        if used.source != "api" or self.client is None:
            return self.credential(used.policy)
        return self.cache.after_failure(used.policy, used, self.client.credential)

    # Locust events.

    def on_init(self, environment):
        """Read each used policy's credential once, before the test starts,
        so a bad token, grant or policy stops Locust with a clear message."""
        try:
            # A tag names no one credential; the lease checks it.
            self.read_ahead([p for p in self.config.uses if not p.startswith("tag:")])
        except SwarmkeyError as e:
            log.error("swarmkey: %s", e)
            log.error("swarmkey: stopping before the test starts")
            raise SystemExit(1)

    def on_test_start(self, environment):
        if _is_worker(environment):
            # A worker starts when the master has taken the lease (the
            # master fires test_start before it sends the spawn jobs):
            # what it read before (the init check) may have rotated since.
            self.cache.clear()
            return
        c = self.config
        if c.under_exec:
            log.info("swarmkey: running under swarmkey exec, which holds the lease")
            return
        if self.client is None:
            if c.uses:
                log.warning("swarmkey: SWARMKEY_USES is set but SWARMKEY_API is not: no lease; rotations may run during this test")
            return
        if not c.uses:
            log.warning("swarmkey: SWARMKEY_USES is empty: no lease is taken; rotations may run during this test")
            return
        if self.lease is not None:
            return
        lease = _Lease(self.client, c.run, c.uses, c.lease_ttl, "%s:%d" % (socket.gethostname(), os.getpid()))
        try:
            lease.start()
        except SwarmkeyError as e:
            log.error("swarmkey: cannot take a lease for run %s: %s; stopping the test", c.run, e)
            environment.process_exit_code = 1
            runner = getattr(environment, "runner", None)
            if runner is not None:
                _spawn(runner.quit)
            return
        self.lease = lease
        # What was read before the lease (the init check) may have been
        # rotated before the lease took effect: users read anew.
        self.cache.clear()

    def on_test_stop(self, environment):
        if self.lease is not None:
            lease, self.lease = self.lease, None
            lease.end()


_STATE = _State()


def _is_worker(environment) -> bool:
    runner = getattr(environment, "runner", None)
    if runner is None:
        return False
    try:
        from locust.runners import WorkerRunner
    except ImportError:  # pragma: no cover
        return False
    return isinstance(runner, WorkerRunner)


def configure(**settings):
    """Override settings from the locustfile, before the test starts:
    ``run``, ``uses`` (a list), ``lease_ttl``, ``cache_ttl`` (seconds),
    ``api``. Everything else comes from the environment."""
    allowed = {"run", "uses", "lease_ttl", "cache_ttl", "api", "timeout"}
    for k in settings:
        if k not in allowed:
            raise TypeError("configure: unknown setting %r; give one of %s" % (k, ", ".join(sorted(allowed))))
    if "uses" in settings:
        settings["uses"] = list(settings["uses"])
    _STATE._overrides.update(settings)
    _STATE._config = None
    _STATE._client = None


def credential(policy: str, refresh: bool = False) -> Credential:
    """The fields of policy's current secret: from the environment swarmkey
    exec set, else from the API (cached for SWARMKEY_CACHE_TTL; ``refresh``
    reads it again now). Raises SwarmkeyError when neither is available."""
    return _STATE.credential(policy, refresh=refresh)


def lease_id():
    """The id of the lease this process holds, or None."""
    return _STATE.lease.id if _STATE.lease is not None else None


def _status(result):
    return getattr(result, "status_code", None)


def with_fresh_credential(policy: str, fn, retry_on=(), is_auth_failure=None):
    """Call ``fn(credential(policy))``; when the credential is refused, read
    it again and call ``fn`` once more with the new one.

    Refused means ``fn`` returned a response whose ``status_code`` is 401 or
    403 (or ``is_auth_failure(result)`` is true), or raised one of
    ``retry_on`` (for a database driver: its authentication error). The
    second call is made only when the re-read gives another version; its
    result (or exception) is final. With Locust's HttpUser the first response
    is reported as a failure unless ``fn`` uses ``catch_response``; for
    requests-based clients ``SwarmkeyAuth`` retries without that.
    """
    if is_auth_failure is None:
        is_auth_failure = lambda r: _status(r) in AUTH_FAILURE_STATUSES  # noqa: E731
    cred = credential(policy)
    try:
        result = fn(cred)
    except tuple(retry_on):
        fresh = _STATE.credential_after_failure(cred)
        if _same(fresh, cred):
            raise
        log.info("swarmkey: credential of policy %s was refused; retrying with version %s", policy, fresh.version)
        return fn(fresh)
    if not is_auth_failure(result):
        return result
    fresh = _STATE.credential_after_failure(cred)
    if _same(fresh, cred):
        return result
    log.info("swarmkey: credential of policy %s was refused (%s); retrying with version %s", policy, _status(result), fresh.version)
    return fn(fresh)


def _same(a: Credential, b: Credential) -> bool:
    if a.version is not None or b.version is not None:
        return a.version == b.version
    return dict.__eq__(a, b)


try:
    import requests.auth as _requests_auth

    _AuthBase = _requests_auth.AuthBase
except ImportError:  # pragma: no cover - Locust depends on requests
    _AuthBase = object


class SwarmkeyAuth(_AuthBase):
    """A requests auth (``self.client.get(url, auth=SwarmkeyAuth("api"))``)
    that puts policy's key in a header and, when the answer is 401 or 403,
    reads the credential again and re-sends the request once with the new
    version. Locust reports one request: the final answer, timed from the
    first send.

    ``field`` is the secret's field (default ``api_key``); ``header`` and
    ``prefix`` say how it is sent (default ``Authorization: Bearer <key>``).
    ``apply(prepared_request, credential)`` replaces the header logic (basic
    auth, a query parameter ...).
    """

    def __init__(self, policy: str, field: str = "api_key", header: str = "Authorization", prefix: str = "Bearer ", apply=None):
        self.policy, self.field, self.header, self.prefix, self.apply = policy, field, header, prefix, apply

    def __repr__(self) -> str:
        return "<SwarmkeyAuth policy=%s field=%s header=%s>" % (self.policy, self.field, self.header)

    def _set(self, r, cred: Credential):
        if self.apply is not None:
            self.apply(r, cred)
            return
        try:
            value = cred[self.field]
        except KeyError:
            raise SwarmkeyError("policy %r: the secret has no field %r (fields: %s)" % (self.policy, self.field, ", ".join(sorted(cred)))) from None
        r.headers[self.header] = self.prefix + str(value)

    def __call__(self, r):
        cred = credential(self.policy)
        self._set(r, cred)
        used = [cred]

        def retry(resp, **kwargs):
            if resp.status_code not in AUTH_FAILURE_STATUSES or getattr(resp.request, "_swarmkey_retried", False):
                return resp
            fresh = _STATE.credential_after_failure(used[0])
            if _same(fresh, used[0]):
                return resp
            log.info("swarmkey: credential of policy %s was refused (%d); retrying with version %s", self.policy, resp.status_code, fresh.version)
            resp.content  # noqa: B018 - release the connection
            resp.close()
            prep = resp.request.copy()
            prep._swarmkey_retried = True
            self._set(prep, fresh)
            again = resp.connection.send(prep, **kwargs)
            again.history.append(resp)
            again.request = prep
            return again

        r.register_hook("response", retry)
        return r


# Register with Locust's events when imported from a locustfile.
try:
    from locust import events as _events
except ImportError:  # pragma: no cover - importable without Locust for tooling
    _events = None


def _repair_empty_locust_version():
    """Debian's python3-locust 2.12.1 ships ``locust/_version.py`` with
    ``version = ''``. Its workers then announce an empty version, which the
    master takes for a pre-2.0 worker and refuses, so distributed mode never
    starts. When (and only when) the version is empty, give the runners a
    placeholder; master and workers importing this module agree on it."""
    try:
        import locust.runners as runners
    except ImportError:  # pragma: no cover
        return
    if getattr(runners, "__version__", None) == "":
        runners.__version__ = "0.0.0"
        log.debug("swarmkey: Locust reports an empty version (Debian's python3-locust); using 0.0.0 between master and workers")


if _events is not None:
    _repair_empty_locust_version()

    @_events.init.add_listener
    def _on_init(environment, **_kw):
        _STATE.on_init(environment)

    @_events.test_start.add_listener
    def _on_test_start(environment, **_kw):
        _STATE.on_test_start(environment)

    @_events.test_stop.add_listener
    def _on_test_stop(environment, **_kw):
        _STATE.on_test_stop(environment)

    @_events.quitting.add_listener
    def _on_quitting(environment, **_kw):
        _STATE.on_test_stop(environment)
