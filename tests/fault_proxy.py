"""A tiny fault-injecting HTTP proxy in front of an S3 (or any HTTP) endpoint.

    python fault_proxy.py UPSTREAM [--latency-ms N] [--slowdown-every K] [--error-every K]
                                   [--only-get] [--tcp]

Prints its own URL (http://127.0.0.1:PORT) on the first line of stdout, then serves until
killed. Every request is forwarded to UPSTREAM after `latency-ms` (each way counted once);
every K-th request is instead answered with 503 SlowDown (throttling) or 500 InternalError.
The count of injected faults and of forwarded requests is printed to stderr on each fault.

With --tcp (latency only, no faults) the proxy does not parse HTTP: it relays each client
connection to a connection of its own to UPSTREAM, holding every burst of bytes from the
client for `latency-ms` before passing it on (in order; the answers flow back at once).
A request thus reaches the server `latency-ms` late and its answer is streamed back through
large buffers, so one proxy relays hundreds of MB/s over many connections: the mode the
throughput benchmark (bench/s3.sh) uses, where the HTTP mode's copies in Python would be
the bottleneck.
"""

import argparse
import http.client
import http.server
import itertools
import queue
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

parser = argparse.ArgumentParser()
parser.add_argument("upstream")
parser.add_argument("--latency-ms", type=float, default=0.0)
parser.add_argument("--slowdown-every", type=int, default=0)
parser.add_argument("--error-every", type=int, default=0)
parser.add_argument("--only-get", action="store_true", help="inject faults into GETs only")
parser.add_argument("--tcp", action="store_true", help="relay bytes with latency, no faults")
args = parser.parse_args()
if args.tcp and (args.slowdown_every or args.error_every):
    parser.error("--tcp injects latency only: drop --slowdown-every / --error-every")

up = urllib.parse.urlparse(args.upstream)
counter = itertools.count(1)
lock = threading.Lock()
local = threading.local()

SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
INTERNAL = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)


def upstream():
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        local.conn = conn
    return conn


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def fault(self, status, reason, body):
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print(f"injected {status} for {self.command} {self.path}", file=sys.stderr, flush=True)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        n = next(counter)
        eligible = not args.only_get or self.command == "GET"
        if args.latency_ms:
            time.sleep(args.latency_ms / 1000.0)
        if eligible and args.slowdown_every and n % args.slowdown_every == 0:
            return self.fault(503, "Slow Down", SLOWDOWN)
        if eligible and args.error_every and n % args.error_every == 0:
            return self.fault(500, "Internal Server Error", INTERNAL)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        for attempt in range(2):
            try:
                conn = upstream()
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError):
                local.conn = None
                if attempt:
                    raise
        self.send_response(resp.status, resp.reason)
        head = self.command == "HEAD"
        for k, v in resp.getheaders():
            skip = ("connection", "transfer-encoding") + (() if head else ("content-length",))
            if k.lower() not in skip:
                self.send_header(k, v)
        if not head:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def close(*socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def answers(upstream_sock, client):
    """Upstream to client, as fast as the bytes come."""
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    try:
        while True:
            n = upstream_sock.recv_into(buf)
            if not n:
                break
            client.sendall(view[:n])
    except OSError:
        pass
    close(upstream_sock, client)


def delayed(pending, upstream_sock, client):
    """Queued client bytes to upstream, each burst `latency-ms` after it arrived."""
    try:
        while True:
            due, data = pending.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                upstream_sock.shutdown(socket.SHUT_WR)
                return
            upstream_sock.sendall(data)
    except OSError:
        close(upstream_sock, client)


def relay(client):
    try:
        upstream_sock = socket.create_connection((up.hostname, up.port), timeout=60)
    except OSError:
        close(client)
        return
    upstream_sock.settimeout(None)
    for s in (client, upstream_sock):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pending = queue.SimpleQueue()
    delay = args.latency_ms / 1000.0
    threading.Thread(target=answers, args=(upstream_sock, client), daemon=True).start()
    threading.Thread(target=delayed, args=(pending, upstream_sock, client), daemon=True).start()
    try:
        while True:
            data = client.recv(1 << 20)
            pending.put((time.monotonic() + delay, data))
            if not data:
                return
    except OSError:
        pending.put((0.0, b""))


if args.tcp:
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    print(f"http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=relay, args=(conn,), daemon=True).start()

server = Server(("127.0.0.1", 0), Handler)
print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
