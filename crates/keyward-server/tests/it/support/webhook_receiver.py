"""A webhook receiver for Keyward's tests, checking signatures with the Standard Webhooks
reference library for Python (`standardwebhooks`), not with Keyward's own code.

    python3 webhook_receiver.py PORT SECRET LOG

Every request is appended to LOG as one JSON line: {"id", "type", "body", "verified"}.
A request whose signature verifies is answered 204; any other, 400.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

PORT, SECRET, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
WEBHOOK = Webhook(SECRET)
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            payload = WEBHOOK.verify(body, headers)
            verified = True
        except Exception:  # any refusal of the library
            payload = None
            verified = False
        line = {
            "id": headers.get("webhook-id"),
            "type": payload.get("type") if payload else None,
            "body": body.decode("utf-8", "replace"),
            "verified": verified,
        }
        with LOCK, open(LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")
        self.send_response(204 if verified else 400)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
