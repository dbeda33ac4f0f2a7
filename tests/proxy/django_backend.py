"""A minimal Django app that decides for Tidewire through its proxies, the way an
application backend decides for Centrifugo: a session-cookie login view and one view
per proxy event.

Run by tests/proxy.rs:  python3 tests/proxy/django_backend.py
It binds 127.0.0.1 on a free port and prints "LISTENING <port>" once it serves. It
stops when its parent kills it (by PID) or closes its stdin.

Users (logged in with GET /login?user=NAME, which sets Django's session cookie):
  anyone      connects; info {"name": NAME}; connect data {"hello": NAME}; meta {"tenant": "t1"}
  banned      connect answered with error 1001 "banned"
  kicked      connect answered with disconnect 4501 "kicked"
  shortlived  expire_at in 1 s; the refresh proxy answers expired: true (3005)
  ended       expire_at in 1 s; the refresh proxy answers disconnect 4503 "session ended"
No session cookie: error 101 "unauthorized" (the client gets it as sent).

Channels: public:* subscribe allowed (data {"welcome": channel}); secret:* refused
(error 103). Publish to public:* rewrites {"text": t} to {"text": T.upper(), "by": user};
"forbidden" text is error 1002.
RPC methods: whoami (user, meta, the X-Tenant header), slow (sleeps 3 s: past the
proxy timeout), fail (error 1003), kick (disconnect 4502).
GET /seen returns every header name each proxy view received, for the allowlist test.
"""

import json
import os
import socketserver
import sys
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="tidewire-proxy-test-secret-not-for-production",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.sessions"],
    MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
    # Signed-cookie sessions: the session lives in the cookie, no database needed.
    SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
    SESSION_COOKIE_HTTPONLY=True,
    USE_TZ=True,
)

import django  # noqa: E402

django.setup()

from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

SEEN = []
SEEN_LOCK = threading.Lock()


def note(view, request):
    with SEEN_LOCK:
        SEEN.append({"view": view, "headers": sorted(k.lower() for k in request.headers.keys())})


def body(request):
    return json.loads(request.body or b"{}")


def login(request):
    request.session["user"] = request.GET.get("user", "")
    return HttpResponse("ok")


def seen(request):
    with SEEN_LOCK:
        return JsonResponse({"seen": SEEN})


@csrf_exempt
def connect(request):
    note("connect", request)
    req = body(request)
    user = request.session.get("user")
    if not user:
        return JsonResponse({"error": {"code": 101, "message": "unauthorized"}})
    if user == "banned":
        return JsonResponse({"error": {"code": 1001, "message": "banned"}})
    if user == "kicked":
        return JsonResponse({"disconnect": {"code": 4501, "reason": "kicked"}})
    result = {
        "user": user,
        "info": {"name": user},
        "data": {"hello": user, "transport": req.get("transport"), "protocol": req.get("protocol")},
        "meta": {"tenant": "t1"},
    }
    if user in ("shortlived", "ended"):
        result["expire_at"] = int(time.time()) + 1
    return JsonResponse({"result": result})


@csrf_exempt
def refresh(request):
    note("refresh", request)
    req = body(request)
    if req.get("user") == "ended":
        return JsonResponse({"disconnect": {"code": 4503, "reason": "session ended"}})
    return JsonResponse({"result": {"expired": True}})


@csrf_exempt
def subscribe(request):
    note("subscribe", request)
    req = body(request)
    channel = req.get("channel", "")
    if channel.startswith("public:") and request.session.get("user") == req.get("user"):
        return JsonResponse({"result": {"data": {"welcome": channel}}})
    return JsonResponse({"error": {"code": 103, "message": "permission denied"}})


@csrf_exempt
def publish(request):
    note("publish", request)
    req = body(request)
    text = (req.get("data") or {}).get("text", "")
    if text == "forbidden":
        return JsonResponse({"error": {"code": 1002, "message": "not allowed to say that"}})
    return JsonResponse({"result": {"data": {"text": text.upper(), "by": req.get("user")}}})


@csrf_exempt
def rpc(request):
    note("rpc", request)
    req = body(request)
    method = req.get("method")
    if method == "whoami":
        data = {"user": req.get("user"), "meta": req.get("meta"), "tenant": request.headers.get("X-Tenant")}
        return JsonResponse({"result": {"data": data}})
    if method == "slow":
        time.sleep(3)
        return JsonResponse({"result": {"data": {"late": True}}})
    if method == "fail":
        return JsonResponse({"error": {"code": 1003, "message": "rpc failed"}})
    if method == "kick":
        return JsonResponse({"disconnect": {"code": 4502, "reason": "kicked by rpc"}})
    return JsonResponse({"error": {"code": 104, "message": "method not found"}})


urlpatterns = [
    path("login", login),
    path("seen", seen),
    path("centrifugo/connect", connect),
    path("centrifugo/refresh", refresh),
    path("centrifugo/subscribe", subscribe),
    path("centrifugo/publish", publish),
    path("centrifugo/rpc", rpc),
]


class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per request: a slow view must not hold up the others."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


def main():
    from django.core.wsgi import get_wsgi_application

    server = make_server("127.0.0.1", 0, get_wsgi_application(), server_class=ThreadingServer, handler_class=QuietHandler)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    # Stop with the parent: when our stdin closes (the test ended), exit.
    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
