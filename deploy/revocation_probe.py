#!/usr/bin/env python3
"""How long a sign-out on one instance takes to reach all the others.

    revocation_probe.py BOUND_S ROUNDS URL1 URL2 [URL...]

Registers an account on URL1, then ROUNDS times: signs in on URL1, checks that
its access cookie opens /dashboard on every instance, signs out on URL1 and
measures, for every other instance, how long until it refuses the same access
cookie (303 instead of 200). Prints the median, p99 and max over all those
delays and exits 1 if any instance still accepted the cookie after BOUND_S
seconds (or any step answered wrongly). Standard library only; one keep-alive
connection per instance, so a sweep over twenty instances takes milliseconds.
"""

import http.client
import re
import secrets
import sys
import time
import urllib.parse

CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


class Instance:
    def __init__(self, url):
        parsed = urllib.parse.urlsplit(url)
        self.origin = f"{parsed.scheme}://{parsed.netloc}"
        self.host, self.port = parsed.hostname, parsed.port
        self.conn = None

    def request(self, method, path, cookies, body=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = self.origin
            body = urllib.parse.urlencode(body)
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                text = response.read().decode("utf-8", "replace")
                return response.status, response.getheader("Location"), response.getheaders(), text
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise


def take_cookies(jar, headers):
    for name, value in headers:
        if name.lower() != "set-cookie":
            continue
        pair, _, attributes = value.partition(";")
        key, _, val = pair.strip().partition("=")
        if "max-age=0" in attributes.lower().replace(" ", ""):
            jar.pop(key, None)
        else:
            jar[key] = val


def fail(message):
    print(f"FAIL {message}", file=sys.stderr)
    sys.exit(1)


def submit(instance, jar, page, path, fields):
    """GET `page` for its CSRF token, then POST `fields` to `path`."""
    status, _, headers, text = instance.request("GET", page, jar)
    take_cookies(jar, headers)
    match = CSRF.search(text)
    if status != 200 or not match:
        fail(f"GET {page} answered {status} without a csrf_token field")
    status, location, headers, _ = instance.request(
        "POST", path, jar, dict(fields, csrf_token=match.group(1))
    )
    take_cookies(jar, headers)
    return status, location


def main():
    if len(sys.argv) < 5:
        fail(__doc__.strip().splitlines()[2].strip())
    bound, rounds = float(sys.argv[1]), int(sys.argv[2])
    instances = [Instance(url) for url in sys.argv[3:]]
    first, others = instances[0], instances[1:]

    email = f"probe.{secrets.token_hex(4)}@example.com"
    password = secrets.token_urlsafe(18)
    jar = {}
    status, location = submit(
        first, jar, "/register", "/register",
        {"name": "Revocation Probe", "email": email, "password": password},
    )
    if (status, location) != (303, "/dashboard"):
        fail(f"POST /register answered {status} {location}, expected 303 to /dashboard")
    status, location = submit(first, jar, "/dashboard", "/logout", {})
    if status != 303:
        fail(f"POST /logout after registering answered {status}")

    delays = []
    for round_ in range(1, rounds + 1):
        jar = {}
        status, location = submit(
            first, jar, "/login", "/login", {"email": email, "password": password}
        )
        if (status, location) != (303, "/dashboard") or "gatehouse_access" not in jar:
            fail(f"round {round_}: POST /login answered {status} {location}")
        access = {"gatehouse_access": jar["gatehouse_access"]}
        for i, instance in enumerate(instances, 1):
            status, *_ = instance.request("GET", "/dashboard", access)
            if status != 200:
                fail(f"round {round_}: instance {i} answered {status} to the new cookie, expected 200")
        status, location = submit(first, jar, "/dashboard", "/logout", {})
        if (status, location) != (303, "/login"):
            fail(f"round {round_}: POST /logout answered {status} {location}")
        signed_out = time.monotonic()
        waiting = dict(enumerate(others, 2))
        while waiting:
            for i, instance in list(waiting.items()):
                status, *_ = instance.request("GET", "/dashboard", access)
                elapsed = time.monotonic() - signed_out
                if status == 303:
                    delays.append(elapsed)
                    del waiting[i]
                elif status != 200:
                    fail(f"round {round_}: instance {i} answered {status}, expected 200 or 303")
            if waiting and time.monotonic() - signed_out > bound:
                fail(
                    f"round {round_}: instances {sorted(waiting)} still accept the cookie "
                    f"{bound:.2f} s after the sign-out"
                )
            time.sleep(0.002)

    delays.sort()
    median = delays[len(delays) // 2]
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print(
        f"{len(others)} instances x {rounds} sign-outs ({len(delays)} refusals): "
        f"median {median * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms "
        f"(bound {bound * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
