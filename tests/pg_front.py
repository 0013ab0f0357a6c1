"""A PostgreSQL server of invented roles: the test chooses their names and passwords.

Creating a login role needs CREATEROLE, which the role of `make services` has not (CREATEDB
only). PgFront plays the server of such roles instead: it answers a client's start-up with a
password request (cleartext, which libpq sends whenever the server asks), checks the password
itself and refuses a wrong one, or an unknown role, with the server's own error
(28P01 "password authentication failed for user ..."). Once the password is right it logs in
to the real server as the admin role (SCRAM-SHA-256) for the same database, hands everything
the server answers from then on to the client (so a missing database fails as the server says)
and relays the session. A TcpProxy underneath, so `cut()` makes the database unreachable.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import socket
import struct
import threading
from collections.abc import Mapping

from psycopg.conninfo import conninfo_to_dict

from tests.tcp_proxy import TcpProxy

SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
AUTH_OK, AUTH_CLEARTEXT, AUTH_SASL, AUTH_SASL_CONTINUE, AUTH_SASL_FINAL = 0, 3, 10, 11, 12
HANDSHAKE_TIMEOUT = 10.0  # seconds a client or the server may take to say its part


class PgFront(TcpProxy):
    """Listens on 127.0.0.1:`port` for the roles of `passwords` (name -> password), which may
    be added to while it runs."""

    def __init__(self, admin_url: str, passwords: Mapping[str, str]) -> None:
        admin = conninfo_to_dict(admin_url)
        self._admin_user = str(admin.get("user", ""))
        self._admin_password = str(admin.get("password", ""))
        self.passwords = dict(passwords)
        self._salted: dict[tuple[bytes, int], bytes] = {}
        super().__init__(str(admin.get("host", "127.0.0.1")), int(str(admin.get("port", 5432))))

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            threading.Thread(target=self._serve, args=(listener, client), daemon=True).start()

    def _serve(self, listener: socket.socket, client: socket.socket) -> None:
        server: socket.socket | None = None
        try:
            client.settimeout(HANDSHAKE_TIMEOUT)
            server = self._handshake(client)
        except (OSError, ValueError):
            server = None
        if server is None:
            with contextlib.suppress(OSError):
                client.close()
            return
        with self._lock:
            if self._listener is not listener:  # cut meanwhile
                client.close()
                server.close()
                return
            self._connections += [client, server]
        client.settimeout(None)
        server.settimeout(None)
        self._pump(client, server)

    def _handshake(self, client: socket.socket) -> socket.socket | None:
        """The start-up and password exchange; the logged-in server socket, or None."""
        while True:
            packet = _read_startup(client)
            (code,) = struct.unpack("!i", packet[:4])
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                client.sendall(b"N")  # no encryption: go on in plain text
                continue
            if code == CANCEL_REQUEST:  # the key is the real server's: pass it on
                with socket.create_connection(self._target, timeout=HANDSHAKE_TIMEOUT) as server:
                    server.sendall(struct.pack("!i", len(packet) + 4) + packet)
                return None
            break
        if code >> 16 != 3:
            raise ValueError(f"protocol {code >> 16} is not 3")
        parameters = _parameters(packet[4:])
        user = parameters.get("user", "")
        client.sendall(_message(b"R", struct.pack("!i", AUTH_CLEARTEXT)))
        kind, body = _read_message(client)
        given = body.rstrip(b"\0").decode("utf-8", "surrogateescape") if kind == b"p" else None
        if given is None or self.passwords.get(user) != given:
            client.sendall(_authentication_failed(user))
            return None
        parameters["user"] = self._admin_user
        server = socket.create_connection(self._target, timeout=HANDSHAKE_TIMEOUT)
        try:
            server.sendall(_startup(code, parameters))
            self._log_in(server, client)
        except BaseException:
            server.close()
            raise
        return server

    def _log_in(self, server: socket.socket, client: socket.socket) -> None:
        """Authenticates to the real server as the admin role; what it sends after that
        (AuthenticationOk and the session's start, or an error) is the client's."""
        kind, body = _read_message(server)
        if kind != b"R":  # an error before authentication: the client's to read
            client.sendall(_message(kind, body))
            return
        (auth,) = struct.unpack("!i", body[:4])
        if auth == AUTH_OK:
            client.sendall(_message(kind, body))
        elif auth == AUTH_CLEARTEXT:
            server.sendall(_message(b"p", self._admin_password.encode() + b"\0"))
        elif auth == AUTH_SASL and b"SCRAM-SHA-256\0" in body[4:]:
            self._scram(server)
        else:
            raise ValueError(f"the server asks for authentication {auth}, not SCRAM-SHA-256")

    def _scram(self, server: socket.socket) -> None:
        nonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = f"n=,r={nonce}"
        first = f"n,,{first_bare}".encode()
        server.sendall(_message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
        kind, body = _read_message(server)
        if kind != b"R" or struct.unpack("!i", body[:4])[0] != AUTH_SASL_CONTINUE:
            raise ValueError("the server did not continue SCRAM")
        server_first = body[4:].decode()
        fields = dict(item.split("=", 1) for item in server_first.split(","))
        salted = self._salted_password(base64.b64decode(fields["s"]), int(fields["i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        final_bare = f"c=biws,r={fields['r']}"
        signed = f"{first_bare},{server_first},{final_bare}".encode()
        signature = hmac.digest(hashlib.sha256(client_key).digest(), signed, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        final = f"{final_bare},p={base64.b64encode(proof).decode()}".encode()
        server.sendall(_message(b"p", final))
        kind, body = _read_message(server)
        if kind != b"R" or struct.unpack("!i", body[:4])[0] != AUTH_SASL_FINAL:
            raise ValueError(f"SCRAM as {self._admin_user} failed: {body!r}")

    def _salted_password(self, salt: bytes, iterations: int) -> bytes:
        key = (salt, iterations)
        if key not in self._salted:
            self._salted[key] = hashlib.pbkdf2_hmac(
                "sha256", self._admin_password.encode(), salt, iterations
            )
        return self._salted[key]


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("closed during the start-up")
        data += chunk
    return data


def _read_startup(sock: socket.socket) -> bytes:
    (length,) = struct.unpack("!i", _read_exactly(sock, 4))
    if not 8 <= length <= 10_000:
        raise ValueError(f"a start-up packet of {length} bytes")
    return _read_exactly(sock, length - 4)


def _read_message(sock: socket.socket) -> tuple[bytes, bytes]:
    kind = _read_exactly(sock, 1)
    (length,) = struct.unpack("!i", _read_exactly(sock, 4))
    if not 4 <= length <= 1_000_000:
        raise ValueError(f"a message of {length} bytes")
    return kind, _read_exactly(sock, length - 4)


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _parameters(data: bytes) -> dict[str, str]:
    items = data.rstrip(b"\0").split(b"\0")
    return {
        key.decode(): value.decode()
        for key, value in zip(items[::2], items[1::2], strict=False)
        if key
    }


def _startup(code: int, parameters: Mapping[str, str]) -> bytes:
    body = struct.pack("!i", code)
    for key, value in parameters.items():
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def _authentication_failed(user: str) -> bytes:
    """The server's own ErrorResponse to a wrong password."""
    fields = {
        b"S": b"FATAL",
        b"V": b"FATAL",
        b"C": b"28P01",
        b"M": f'password authentication failed for user "{user}"'.encode(),
    }
    return _message(b"E", b"".join(key + value + b"\0" for key, value in fields.items()) + b"\0")
