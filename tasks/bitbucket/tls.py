"""The process's one TLS context for API clients, made once, and early if asked.

Loading the CA bundle (certifi, or SSL_CERT_FILE / SSL_CERT_DIR) takes ~25 ms, and each
listing of each workspace opens a client; one context serves any number of connections and
threads. OpenSSL reads the bundle outside the GIL, so a command that will read an API starts
building it in the background while it imports the rest::

    warm_tls_context()            # returns at once
    ...
    httpx.Client(verify=tls_context())   # waits for it if it is not made yet
"""

from __future__ import annotations

import os
import ssl
import threading
from concurrent.futures import Future

import httpx

__all__ = ["tls_context", "warm_tls_context"]

_lock = threading.Lock()
_made: Future[ssl.SSLContext] | None = None


def warm_tls_context() -> Future[ssl.SSLContext]:
    """Start making the context in a thread of its own, unless it is made or under way."""
    global _made
    with _lock:
        if _made is None:
            _made = Future()
            threading.Thread(target=_make, args=(_made,), name="bb2sv-tls", daemon=True).start()
        return _made


def tls_context() -> ssl.SSLContext:
    """The context (httpx's defaults); an error making it (say, a missing SSL_CERT_FILE)
    is raised here, to the client that needs it."""
    return warm_tls_context().result()


def _make(made: Future[ssl.SSLContext]) -> None:
    try:
        made.set_result(httpx.create_ssl_context())
    except BaseException as exc:  # handed to whoever asks for the context
        made.set_exception(exc)


def _forget_unfinished() -> None:
    # A child forked while the context was being made has no thread to finish it.
    global _made
    if _made is not None and not _made.done():
        _made = None


os.register_at_fork(after_in_child=_forget_unfinished)
