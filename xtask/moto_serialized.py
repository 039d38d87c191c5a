"""moto's server, with each request handled atomically, as AWS does.

DynamoDB applies a conditional write atomically, and Secrets Manager moves
`AWSCURRENT` in one step. moto's threaded server does neither: two
`PutItem`s with `attribute_not_exists(id)` that arrive together can both
succeed, because moto checks the condition and then stores the item in two
Python steps that another request's thread can run between. A test of a lease
(one token refresh across twenty invocations, one claim per webhook) then
fails now and then for a reason AWS does not have.

This wraps moto's WSGI application in one lock, so every request runs to the
end before the next begins, and the emulator keeps the guarantees the adapters
rely on. `xtask/moto_serialized_test.py` shows the race on plain moto and its
absence here.

SQS `ReceiveMessage` runs outside the lock: it long-polls (it sleeps until a
message arrives or its wait ends), and holding the lock through that sleep
would stall every other request. Standard queues deliver at least once on AWS
too, so nothing the adapters rely on is lost by it.

Run as moto_server would be: `python moto_serialized.py -H 127.0.0.1 -p PORT`.
"""

import sys
import threading

from moto import server
from moto.moto_server import werkzeug_app

_LOCK = threading.Lock()
_UNLOCKED_TARGETS = {"AmazonSQS.ReceiveMessage"}
_dispatch = werkzeug_app.DomainDispatcherApplication.__call__


def _unlocked(environ) -> bool:
    if environ.get("HTTP_X_AMZ_TARGET", "") in _UNLOCKED_TARGETS:
        return True
    # SQS's query protocol names the action in the query string or the form.
    query = environ.get("QUERY_STRING", "")
    return "Action=ReceiveMessage" in query


def _serialized(self, environ, start_response):
    if _unlocked(environ):
        return _dispatch(self, environ, start_response)
    with _LOCK:
        # The body is produced inside the lock, so the request's effects are
        # complete before another request starts.
        return list(_dispatch(self, environ, start_response))


werkzeug_app.DomainDispatcherApplication.__call__ = _serialized

def serve(argv: list[str]) -> None:
    """moto_server's command line, serialized."""
    server.main(argv)


if __name__ == "__main__":
    serve(sys.argv[1:])
