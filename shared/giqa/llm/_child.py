"""Launcher of the embedded llama.cpp server: the server lives no longer than the process that started it.

Only :class:`giqa.llm.server.EmbeddedLLMServer` runs this file, as a script (so the child uses the very files
the parent imported, whatever ``sys.path`` the parent had), like this::

    python .../giqa/llm/_child.py --parent-pid P --control-fd F [--no-pdeathsig] -- <llama_cpp.server options>

Three independent ways to notice that the parent is gone, any one of which ends the server (decided: all
three, because each covers a hole of the others):

1. Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the server when the parent dies, even by
   SIGKILL, even while this process is stuck in C code. Set here after exec, not in a ``preexec_fn`` (unsafe
   in a parent with threads). The kernel's "parent" is the *thread* that forked us, so the parent asks for
   it only when it starts the server from its main thread (``--no-pdeathsig`` otherwise).
2. The control socket: the parent holds the other end of a socketpair; when the parent dies its end closes
   and the watchdog thread reads EOF. Portable wherever prctl is missing.
3. The watchdog also polls ``getppid()``: a re-parented child sees a new parent even when a forked worker of
   the dead parent still holds the socket's other end open.

The launcher also binds the listening socket itself, before loading the model, and reports the port over
the control socket: port 0 becomes a free port that no other process can take between choice and use (two
servers can start at once), and a port in use or an unloadable GGUF is one clear line
(``error <message>``) instead of a log to read.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import select
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_INTERVAL_S = 0.5


def set_parent_death_signal(signum: int) -> bool:
    """Ask the Linux kernel to send ``signum`` when the parent (thread) dies; False without prctl."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return int(prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0


def _parent_gone(why: str) -> None:
    sys.stderr.write(f"giqa llm launcher: {why}; the server stops\n")
    sys.stderr.flush()
    # at once, from this thread: the server holds no state worth a graceful shutdown, and nobody waits for it
    os._exit(0)


def watch_parent(control: socket.socket, parent_pid: int) -> None:
    """Watchdog thread: end the process when the control socket closes or the parent pid changes."""
    while True:
        readable, _, _ = select.select([control], [], [], WATCH_INTERVAL_S)
        if readable:
            try:
                data = control.recv(4096)
            except OSError:
                data = b""
            if not data:
                _parent_gone("the parent's control socket closed")
        if os.getppid() != parent_pid:
            _parent_gone(f"parent process {parent_pid} is gone")


def report(control: socket.socket, line: str) -> None:
    """One status line to the parent (``port N`` or ``error MESSAGE``); a dead parent is not an error here.

    Errors also go to the log, where a parent that missed the line still finds them."""
    if line.startswith("error "):
        sys.stderr.write(f"giqa llm launcher: {line[6:]}\n")
        sys.stderr.flush()
    try:
        control.sendall((" ".join(line.split()) + "\n").encode("utf-8"))
    except OSError:
        pass


def listen(host: str, port: int, attempts: int = 5) -> socket.socket:
    """A listening TCP socket on host:port, held from now on (port 0: a free port the kernel picks)."""
    for attempt in range(attempts):
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            # as uvicorn does: a restart must not wait for the old connections' TIME_WAIT; an active listener
            # on the port still makes bind() or listen() fail
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(2048)
            return sock
        except OSError as exc:
            sock.close()
            # port 0 may race with another bound-but-not-yet-listening socket: pick again
            if port == 0 and exc.errno == errno.EADDRINUSE and attempt + 1 < attempts:
                continue
            raise
    raise AssertionError("unreachable")


def _server_settings(argv: list[str]) -> tuple[Any, list[Any]]:
    from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
    from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings

    parser = argparse.ArgumentParser(prog="llama_cpp.server (via giqa)")
    add_args_from_model(parser, Settings)
    args = parser.parse_args(argv)
    return parse_model_from_args(ServerSettings, args), [parse_model_from_args(ModelSettings, args)]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="giqa.llm._child")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--no-pdeathsig", action="store_true")
    ours = parser.parse_args(argv[:split])
    control = socket.socket(fileno=ours.control_fd)

    if not ours.no_pdeathsig:
        set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != ours.parent_pid:  # the parent died before the signal was armed
        return 0
    threading.Thread(
        target=watch_parent, args=(control, ours.parent_pid), name="giqa-parent-watch", daemon=True
    ).start()

    server_settings, model_settings = _server_settings(argv[split + 1 :])
    try:
        listener = listen(server_settings.host, server_settings.port)
    except OSError as exc:
        report(
            control,
            f"error cannot listen on {server_settings.host}:{server_settings.port}: {exc.strerror or exc}",
        )
        return 1
    port = int(listener.getsockname()[1])
    report(control, f"port {port}")

    import uvicorn
    from llama_cpp.server.app import create_app

    try:
        app = create_app(server_settings=server_settings, model_settings=model_settings)
    except Exception as exc:  # noqa: BLE001 — any load failure is reported, then the process ends
        report(control, f"error cannot load the GGUF model {model_settings[0].model}: {exc}")
        return 1
    config = uvicorn.Config(
        app,
        host=server_settings.host,
        port=port,
        ssl_keyfile=server_settings.ssl_keyfile,
        ssl_certfile=server_settings.ssl_certfile,
    )
    uvicorn.Server(config).run(sockets=[listener])
    return 0


if __name__ == "__main__":
    # run as a script, Python put this folder first on sys.path; its module names (server, client, errors)
    # must not shadow top-level packages the server imports
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]
    sys.exit(main())
