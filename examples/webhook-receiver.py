"""A receiver of the gateway's completion events (docs/using/webhooks.md): verifies each with the
Standard Webhooks reference library, handles each event once (by its `webhook-id`), answers 204.

    python3 -m venv /tmp/hook && /tmp/hook/bin/pip install standardwebhooks==1.1.0
    WEBHOOK_SECRET=whsec_... /tmp/hook/bin/python examples/webhook-receiver.py   # 127.0.0.1:9000

A signature that does not verify is answered 400 (the gateway retries it, then gives up after
24 h); an event seen already is answered 204 again without being handled twice.
"""

import http.server
import json
import os

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

VERIFY = Webhook(os.environ["WEBHOOK_SECRET"])
SEEN = set()  # a real receiver keeps these where it keeps its work


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        if length > 1_000_000:
            return self.answer(413)
        body = self.rfile.read(length)  # the exact bytes: never re-serialize before verifying
        try:
            event = VERIFY.verify(body, {k.lower(): v for k, v in self.headers.items()})
        except WebhookVerificationError as e:
            print("refused:", e)
            return self.answer(400)
        event_id = self.headers["webhook-id"]
        if event_id not in SEEN:
            SEEN.add(event_id)
            operation = event["data"]
            statuses = {p: r["status"] for p, r in operation["results"].items()}
            print(event["type"], operation["operation_id"], operation["state"], statuses)
        self.answer(204)

    def answer(self, status):
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("127.0.0.1", 9000), Handler).serve_forever()
