"""A TCP proxy a test can cut, to make a real server unreachable without stopping it.

While cut, every open connection is reset and new ones are refused: what a client sees when
PostgreSQL goes down. Works the same with external services, which tests cannot stop.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

_LINGER_ZERO = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")  # struct linger {1, 0}


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.port = 0
        self._open()

    def cut(self) -> None:
        """Resets every connection and refuses new ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, []
        if listener is not None:
            listener.close()
        for conn in connections:
            with contextlib.suppress(OSError):
                # SO_LINGER 0: close sends RST, as a dying server's kernel does.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
                conn.close()

    def restore(self) -> None:
        """Accepts connections again, on the same port."""
        self._open()

    def close(self) -> None:
        self.cut()

    def _open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._connections += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: server, server: client}
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                sock.setblocking(True)
                selector.register(sock, selectors.EVENT_READ)
            while True:
                try:
                    for key, _ in selector.select(timeout=1):
                        ready = key.fileobj
                        assert isinstance(ready, socket.socket)
                        data = ready.recv(65536)
                        if not data:
                            raise OSError("closed")
                        peers[ready].sendall(data)
                except (OSError, ValueError):
                    for sock in peers:
                        with contextlib.suppress(OSError):
                            sock.close()
                    return
