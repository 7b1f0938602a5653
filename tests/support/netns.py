"""Pods' network namespaces seen from the host: each Pod has its own loopback, while the test's servers
(kube-apiserver, authorization servers) stay on the host's 127.0.0.1.

:meth:`PodNetwork.relay` makes a Pod's 127.0.0.1:<port> reach the same port on the host's 127.0.0.1:
the operator inside talks to ``https://127.0.0.1:<apiserver port>`` and ``http://127.0.0.1:<AS port>``
exactly as the test spec names them, and nothing ever leaves loopback (support/cni_relay.py sets this
up for every Pod). :meth:`PodNetwork.http_get` GETs a Pod's port on its own loopback.
The relay's listening socket is created by a thread that entered the namespace (``setns`` switches
only the calling thread); connections to the host are made from threads in the host's namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def _in_netns(path: Path, action: Callable[[], T]) -> T:
    """Run ``action`` on a fresh thread that has entered the network namespace at ``path``."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(path, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({path}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(action())
        except BaseException as exc:
            errors.append(exc)

    # The thread ends after the action: it never returns to the host namespace, nor needs to.
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _splice(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until both sides are done, then close both."""
    other = threading.Thread(target=_pipe, args=(b, a), daemon=True)
    other.start()
    _pipe(a, b)
    other.join()
    a.close()
    b.close()


class PodNetwork:
    """A Pod's network namespace (made by its runtime), seen from the host: relays into it, connections in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._listeners: list[socket.socket] = []
        self._closed = threading.Event()

    def close(self) -> None:
        """Stop relaying (the namespace itself is the runtime's)."""
        self._closed.set()
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._listeners.clear()

    def relay(self, port: int) -> None:
        """From now on 127.0.0.1:``port`` inside the namespace reaches 127.0.0.1:``port`` on the host."""
        def listen() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(64)
            return sock

        listener = _in_netns(self.path, listen)
        self._listeners.append(listener)
        threading.Thread(target=self._accept, args=(listener, port), daemon=True).start()

    def _accept(self, listener: socket.socket, port: int) -> None:
        while not self._closed.is_set():
            try:
                inner, _ = listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                inner.close()
                continue
            outer.settimeout(None)
            threading.Thread(target=_splice, args=(inner, outer), daemon=True).start()

    def connect(self, port: int, timeout: float = 5.0) -> socket.socket:
        """A TCP connection to 127.0.0.1:``port`` inside the namespace (what the kubelet's probes reach)."""
        def dial() -> socket.socket:
            return socket.create_connection(("127.0.0.1", port), timeout=timeout)

        return _in_netns(self.path, dial)

    def http_get(self, port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """A minimal HTTP/1.0 GET inside the namespace: (status, body)."""
        with self.connect(port, timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        return status, body
