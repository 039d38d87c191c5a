"""The project's emulator (xtask/moto_serialized.py: moto, each request
atomic) counting every AWS request it serves, for `cargo xtask bench`'s
peer comparison: AWS calls per accepted webhook, counted where they land.

Each request is counted by service (the SigV4 credential scope of its
Authorization header) and operation (`X-Amz-Target`, as the JSON protocols
of DynamoDB, SQS and Secrets Manager name it, or `Action=` of the query
protocol), before moto handles it, retries included.

- `GET /__bench/counts`: {"service:Operation": n, ...} since the last reset.
- `POST /__bench/reset`: zero the counts.

Run as moto_server would be: `python moto_counting.py -H 127.0.0.1 -p PORT`
with the venv that has moto (.venv-tools).
"""

import json
import re
import sys
import threading
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "xtask"))

import moto_serialized  # noqa: E402  (patches moto's dispatcher: one request at a time)
from moto.moto_server import werkzeug_app  # noqa: E402

_COUNTS: Counter = Counter()
_COUNTS_LOCK = threading.Lock()
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_ACTION = re.compile(r"(?:^|&)Action=([A-Za-z]+)")
_serialized = werkzeug_app.DomainDispatcherApplication.__call__


def _operation(environ) -> str:
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = scope.group(1) if scope else "unsigned"
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    action = _ACTION.search(environ.get("QUERY_STRING", ""))
    if action:
        return f"{service}:{action.group(1)}"
    return f"{service}:{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')}"


def _counting(self, environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/__bench/"):
        with _COUNTS_LOCK:
            if path == "/__bench/reset":
                _COUNTS.clear()
            body = json.dumps(dict(sorted(_COUNTS.items()))).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    op = _operation(environ)
    with _COUNTS_LOCK:
        _COUNTS[op] += 1
    return _serialized(self, environ, start_response)


werkzeug_app.DomainDispatcherApplication.__call__ = _counting

if __name__ == "__main__":
    moto_serialized.serve(sys.argv[1:])
