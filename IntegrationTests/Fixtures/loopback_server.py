"""Shared start-up of the loopback test servers (credential-endpoint.py, checksum-rejecting-proxy.py)."""
import http.server
import os


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that does not log every request to stderr."""

    def log_message(self, *args):
        pass


def serve(handler, port_file):
    """Serves `handler` on 127.0.0.1 and a free port, written atomically to `port_file` once listening."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()
