"""A webhook receiver for tests/tests/notifications.rs: Python's own HTTP server, recording
each POST as one JSON line (path, headers, body) in the file given. Answers 503 to the first
`fail_first` calls, to show that vft retries. Prints its port when listening."""

import http.server
import json
import sys

out_path, fail_first = sys.argv[1], int(sys.argv[2])
calls = 0


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global calls
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length).decode("utf-8")
        calls += 1
        if calls <= fail_first:
            self.send_response(503)
            self.end_headers()
            return
        with open(out_path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"path": self.path, "headers": dict(self.headers), "body": body}) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
