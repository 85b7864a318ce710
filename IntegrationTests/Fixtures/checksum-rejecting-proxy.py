#!/usr/bin/env python3
"""An S3 front that refuses checksum headers as Backblaze B2 does, forwarding everything else.

Usage: checksum-rejecting-proxy.py PORTFILE UPSTREAM_HOST UPSTREAM_PORT

Listens on 127.0.0.1 and a free port (written to PORTFILE). A request carrying an x-amz-checksum-* or
x-amz-sdk-checksum-algorithm header gets B2's documented answer (400 InvalidArgument "Unsupported header ...
received for this API call."); every other request goes to the upstream S3 server unchanged (same Host header,
so SigV4 signatures still verify) and its answer comes back. Each refusal is appended to PORTFILE + ".log".
"""
import http.client
import loopback_server
import sys

port_file, upstream_host, upstream_port = sys.argv[1], sys.argv[2], int(sys.argv[3])


class Handler(loopback_server.QuietHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        refused = [h for h in self.headers.keys()
                   if h.lower().startswith("x-amz-checksum-") or h.lower() == "x-amz-sdk-checksum-algorithm"]
        if refused:
            with open(port_file + ".log", "a") as log:
                log.write(f"refused {self.command} {self.path} {refused[0]}\n")
            document = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidArgument</Code><Message>"
                        f"Unsupported header '{refused[0].lower()}' received for this API call.</Message></Error>")
            payload = document.encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        connection = http.client.HTTPConnection(upstream_host, upstream_port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "expect")}
        connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body if body else None)
        response = connection.getresponse()
        payload = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        # A HEAD answer's Content-Length is the object's size, not the (empty) payload's.
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        connection.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


loopback_server.serve(Handler, port_file)
