"""A minimal HTTP/1.1 keep-alive server on 127.0.0.1 that stands in for canasta's redemption endpoint.

It checks what ``redeem.lua`` sends (method, path, bearer token, JSON fields, idempotency keys unique per
outlet) and answers 201, or 400/401/404/409, so a wrk run against it both tests the load script and
measures the load generator's own ceiling. It prints the port it listens on, then serves until it is
terminated or ``--max-seconds`` have passed.

    python bench/_echo_server.py [--port 0] [--max-seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json

PATH = b"/api/v1/redemptions"
FIELDS = ("card", "programme", "quantity", "outlet", "idempotency_key")
REASONS = {201: "Created", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 409: "Conflict"}


def _response(status: int, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


SEEN: set[tuple[str, str]] = set()


class RedemptionStub(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            request_line, *header_lines = self.buffer[:end].split(b"\r\n")
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(self.handle(request_line, headers, body))

    def handle(self, request_line: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        method, _, rest = request_line.partition(b" ")
        if method != b"POST" or rest.partition(b" ")[0] != PATH:
            return _response(404, b'{"detail": "not found"}')
        if not headers.get(b"authorization", b"").startswith(b"Bearer ") or (
            headers.get(b"content-type") != b"application/json"
        ):
            return _response(401, b'{"detail": "unauthorised"}')
        try:
            payload = json.loads(body)
        except ValueError:
            return _response(400, b'{"detail": "invalid json"}')
        if not isinstance(payload, dict) or not all(isinstance(payload.get(f), str) for f in FIELDS):
            return _response(400, b'{"detail": "missing field"}')
        key = (payload["outlet"], payload["idempotency_key"])
        if key in SEEN:
            return _response(409, b'{"detail": "duplicate idempotency key"}')
        SEEN.add(key)
        return _response(201, b'{"status": "redeemed"}')


async def serve(port: int, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(RedemptionStub, "127.0.0.1", port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await asyncio.sleep(max_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description="Stand-in for canasta's redemption endpoint.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.max_seconds))


if __name__ == "__main__":
    main()
