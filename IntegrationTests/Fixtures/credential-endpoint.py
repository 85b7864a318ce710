#!/usr/bin/env python3
"""A loopback stand-in for the container credentials endpoint and the EC2 instance metadata service (IMDSv2).

Usage: credential-endpoint.py PORTFILE CREDENTIALS_JSON [CONTAINER_TOKEN]

Serves, on 127.0.0.1 and a free port (written to PORTFILE):
  GET  /creds                                           the container credentials endpoint; when CONTAINER_TOKEN is
                                                        given, the Authorization header must equal it (else 401)
  PUT  /latest/api/token                                an IMDSv2 session token (needs the TTL header)
  GET  /latest/meta-data/iam/security-credentials/      the role name (needs the session token, else 401)
  GET  /latest/meta-data/iam/security-credentials/ROLE  the role's credentials (needs the session token)
The credentials are read from CREDENTIALS_JSON at every request ({"AccessKeyId", "SecretAccessKey", "Token",
"Expiration"}), so a test rotates them by rewriting the file. Every request is appended to PORTFILE + ".log".
"""
import loopback_server
import secrets
import sys

port_file, credentials_file = sys.argv[1], sys.argv[2]
container_token = sys.argv[3] if len(sys.argv) > 3 else None
imds_tokens = set()
ROLE = "stackvault-test-role"


class Handler(loopback_server.QuietHandler):
    def reply(self, status, body=b"", content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def note(self):
        with open(port_file + ".log", "a") as log:
            log.write(f"{self.command} {self.path}\n")

    def credentials(self):
        with open(credentials_file, "rb") as f:
            return f.read()

    def do_PUT(self):
        self.note()
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            token = secrets.token_hex(16)
            imds_tokens.add(token)
            return self.reply(200, token.encode(), "text/plain")
        self.reply(400)

    def do_GET(self):
        self.note()
        if self.path == "/creds":
            if container_token is not None and self.headers.get("Authorization") != container_token:
                return self.reply(401, b'{"message":"bad token"}')
            return self.reply(200, self.credentials())
        prefix = "/latest/meta-data/iam/security-credentials/"
        if self.path.startswith(prefix):
            if self.headers.get("X-aws-ec2-metadata-token") not in imds_tokens:
                return self.reply(401, b"", "text/plain")
            if self.path == prefix:
                return self.reply(200, ROLE.encode(), "text/plain")
            if self.path == prefix + ROLE:
                return self.reply(200, self.credentials())
        self.reply(404)


loopback_server.serve(Handler, port_file)
