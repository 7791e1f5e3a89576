"""A threaded HTTP server for tests that leaves no thread behind.

The standard ThreadingHTTPServer runs handlers in daemon threads that server_close() does not wait for,
and prints a traceback when a client hangs up first (a timeout test does that on purpose). On Python 3.11
printing a traceback calls ast.parse, whose recursion counter is shared between threads, so a handler still
printing after its test ended could fail an unrelated test's ast.parse (pytest rewriting a module it
imports) with "AST constructor recursion depth mismatch". Joining the handlers and staying quiet about
clients that left keeps each test's threads inside that test.
"""

from __future__ import annotations

from http.server import ThreadingHTTPServer
from typing import Any


class JoinedHTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up (a timeout under test): nothing to report
        super().handle_error(request, client_address)
