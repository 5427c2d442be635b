"""The demo origin of `make run`: a small HTTP server on loopback that says who it is and what
it was sent (so the proxy's headers can be seen). Usage: origin.py PORT"""
import http.server
import json
import sys


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # one write per answer

    def do_GET(self):
        body = json.dumps({"origin": "defenra demo origin", "path": self.path,
                           "host": self.headers.get("Host"),
                           "x-forwarded-for": self.headers.get("X-Forwarded-For"),
                           "x-real-ip": self.headers.get("X-Real-IP")}, indent=1) + "\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Origin).serve_forever()
