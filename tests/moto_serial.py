"""moto's DynamoDB server with requests applied one at a time.

moto's backends keep their state in plain Python objects with no locking, and `moto_server`
serves each request on its own thread: two concurrent `ADD messageCount :1` updates of one item
can both read the old value, which real DynamoDB never allows (every write to an item is atomic,
and transactions are serializable). The tests fire a hundred writes at one item at once, so they
need DynamoDB's guarantee. This runs moto's own WSGI application behind one lock: connections are
still accepted concurrently, requests are applied in sequence, which is the per-item atomicity
DynamoDB promises (and more).

Usage: python moto_serial.py -H 127.0.0.1 -p PORT
"""

import argparse
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serial(environ, start_response):
        with lock:
            # moto answers with a fully built body: materialise it inside the lock.
            return list(app(environ, start_response))

    run_simple(
        args.host,
        args.port,
        serial,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
