"""A Git smart-HTTP server that requires a token, for the tests.

Git's own `git http-backend` (the CGI program Git ships for serving
repositories over HTTP) answers every request; in front of it, each request
must carry HTTP Basic credentials whose password is the token, as GitHub
takes a personal access token. Without it, or with another, the answer is
401 with `WWW-Authenticate: Basic`, as a Git host gives.

    python git_http.py ROOT TOKEN_FILE LOG

serves the bare repositories under ROOT on 127.0.0.1 (a free port, printed
as the first line of stdout), and appends one line per request to LOG:
`<method> <path> <status>`, never the credentials.
"""

import base64
import hmac
import http.server
import os
import subprocess
import sys


def main():
    root, token_file, log = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(token_file, encoding="utf-8") as f:
        token = f.read().strip()
    backend = os.path.join(
        subprocess.check_output(["git", "--exec-path"], text=True).strip(),
        "git-http-backend",
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def record(self, status):
            with open(log, "a", encoding="utf-8") as f:
                path = self.path.split("?", 1)[0]
                f.write(f"{self.command} {path} {status}\n")

        def authorized(self):
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return False
            try:
                user_pass = base64.b64decode(header[6:]).decode("utf-8")
            except ValueError:
                return False
            _, _, password = user_pass.partition(":")
            return hmac.compare_digest(password.encode(), token.encode())

        def refuse(self):
            self.record(401)
            body = b"authentication required\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def serve(self):
            # The body is read whole, so an unauthenticated push of a large
            # pack is not left in the socket.
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if not self.authorized():
                self.refuse()
                return
            path, _, query = self.path.partition("?")
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": root,
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": "token",
                "REMOTE_ADDR": self.client_address[0],
                "GIT_HTTP_MAX_REQUEST_BUFFER": "100M",
            }
            done = subprocess.run(
                [backend], input=body, env=env, capture_output=True, check=False
            )
            head, found, payload = done.stdout.partition(b"\r\n\r\n")
            if not found:
                head, found, payload = done.stdout.partition(b"\n\n")
            if done.returncode != 0 or not found:
                # The backend failed: say so, never an empty 200.
                self.record(500)
                body = done.stderr or b"git http-backend failed\n"
                self.send_response(500)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            status, headers = 200, []
            for line in head.decode("latin-1").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split(" ", 1)[0])
                elif name:
                    headers.append((name, value.strip()))
            self.record(status)
            self.send_response(status)
            for name, value in headers:
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = serve
        do_POST = serve

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
