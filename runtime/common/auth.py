"""Authentication on the cluster's TCP port: a shared token, never sent in the clear.

When a peer connects over TCP, the node manager first sends a random nonce
(``AuthChallenge``); the peer's first message must be a ``Hello`` whose ``auth`` field is
HMAC-SHA256(token, nonce). Anything else — no hello, a wrong answer, garbage bytes — gets
the connection closed and a line in the log, and the server keeps serving everyone else.
Unix-socket peers are trusted through file permissions (the socket lives in a directory
only its owner can enter).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

TOKEN_ENV = "JUPYTER_RAY_TOKEN"


def new_token() -> str:
    return secrets.token_hex(32)


def new_nonce() -> bytes:
    return os.urandom(32)


def answer(token: str, nonce: bytes) -> bytes:
    return hmac.new(token.encode(), nonce, hashlib.sha256).digest()


def verify(token: str, nonce: bytes, response: bytes | None) -> bool:
    if not isinstance(response, bytes):
        return False
    return hmac.compare_digest(answer(token, nonce), response)


def write_token(path: str, token: str) -> None:
    """Store the token readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)


def read_token(path: str) -> str:
    with open(path) as f:
        return f.read().strip()
