"""GET a URL on loopback every few milliseconds for a while, in a process of its own: the latencies, as JSON.

`python -m bench.poll URL SECONDS INTERVAL_MS` prints "ready", polls over one keep-alive connection
(a new one after an error), then prints {"latencies_s": [...], "errors": N}. Standard library only:
it starts in a few tens of milliseconds, and no benchmark's client work shares its interpreter.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from urllib.parse import urlsplit

TIMEOUT_S = 60.0


def poll(url: str, seconds: float, interval_s: float) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1" or parts.port is None:
        raise ValueError(f"loopback URLs with a port only: {url}")
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_S)
    latencies, errors = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            connection.request("GET", parts.path or "/")
            response = connection.getresponse()
            response.read()
            errors += response.status != 200
        except (OSError, http.client.HTTPException):
            errors += 1
            connection.close()
        latencies.append(time.perf_counter() - started)
        time.sleep(interval_s)
    connection.close()
    return {"latencies_s": latencies, "errors": errors}


def main(argv: list[str]) -> int:
    url, seconds, interval_ms = argv[0], float(argv[1]), float(argv[2])
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdout.write(json.dumps(poll(url, seconds, interval_ms / 1000)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
