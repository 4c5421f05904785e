"""The demo dApp's HTTP client against servers that reset, refuse and answer 503: it retries
only what the node cannot have read (``/infer`` is not idempotent), within a deadline."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from demo.http_retry import AnswerLost, NodeUnavailable, RetryPolicy, new_client, post_json

FAST = RetryPolicy(deadline_s=5.0, first_delay_s=0.05, max_delay_s=0.2)

#: what the fake node does with the n-th request (0-based) it reads on a connection
Behaviour = Callable[[int, int, socket.socket], None]


def _answer(sock: socket.socket, status: int, body: bytes, keep_alive: bool) -> None:
    reason = {200: "OK", 503: "Service Unavailable"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: {'keep-alive' if keep_alive else 'close'}"
        "\r\n\r\n"
    )
    sock.sendall(head.encode() + body)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a server does with unread data in its buffer."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _read_request(sock: socket.socket, buf: bytearray) -> bool:
    """Read one whole HTTP request (headers + content-length body) into nothing; False on EOF."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        buf.extend(chunk)
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        rest += chunk
    buf[:] = rest[length:]
    return True


class FakeNode:
    """A TCP server speaking just enough HTTP/1.1; counts the requests it reads."""

    def __init__(self, behaviour: Behaviour, port: int = 0) -> None:
        self.behaviour = behaviour
        self.requests_read = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", port))
        self._srv.listen(16)
        self.port = int(self._srv.getsockname()[1])
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/models/0x00/infer"

    def _accept(self) -> None:
        while not self._stop:
            try:
                sock, _ = self._srv.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        buf = bytearray()
        on_conn = 0
        try:
            while _read_request(sock, buf):
                with self._lock:
                    n = self.requests_read
                    self.requests_read += 1
                self.behaviour(n, on_conn, sock)
                on_conn += 1
                if sock.fileno() == -1:
                    return
        except OSError:
            return
        finally:
            if sock.fileno() != -1:
                sock.close()

    def close(self) -> None:
        self._stop = True
        self._srv.close()


@pytest.fixture
def node_factory() -> Iterator[Callable[[Behaviour], FakeNode]]:
    made: list[FakeNode] = []

    def make(behaviour: Behaviour) -> FakeNode:
        made.append(FakeNode(behaviour))
        return made[-1]

    yield make
    for n in made:
        n.close()


OK = b'{"output_q": [1, 2], "receipt": {}}'


def test_postJson_503ThenOk_retriesAndReturnsTheAnswer(
    node_factory: Callable[[Behaviour], FakeNode],
) -> None:
    def behaviour(n: int, _on_conn: int, sock: socket.socket) -> None:
        if n < 2:
            _answer(sock, 503, b'{"detail": "model halted"}', keep_alive=False)
            sock.close()
        else:
            _answer(sock, 200, OK, keep_alive=False)
            sock.close()

    node = node_factory(behaviour)
    with new_client(5.0) as client:
        assert post_json(client, node.url, {"input_q": [1]}, FAST)["output_q"] == [1, 2]
    assert node.requests_read == 3


def test_postJson_resetAfterTheNodeReadTheRequest_isNotRetried(
    node_factory: Callable[[Behaviour], FakeNode],
) -> None:
    """The node read the request (it may have served the job): a retry would make a second
    job, so the client reports the answer lost instead."""

    def behaviour(_n: int, _on_conn: int, sock: socket.socket) -> None:
        _reset(sock)

    node = node_factory(behaviour)
    with new_client(5.0) as client, pytest.raises(AnswerLost, match="not retried"):
        post_json(client, node.url, {"input_q": [1]}, FAST)
    time.sleep(0.2)
    assert node.requests_read == 1


def test_postJson_nodeNotListeningYet_retriesUntilItIs() -> None:
    """Connection refused: nothing was sent, so retrying is safe; the node comes up later."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    started: list[FakeNode] = []

    def start_later() -> None:
        time.sleep(0.4)
        started.append(
            FakeNode(lambda _n, _c, sock: (_answer(sock, 200, OK, False), sock.close()), port)
        )

    threading.Thread(target=start_later, daemon=True).start()
    try:
        with new_client(5.0) as client:
            url = f"http://127.0.0.1:{port}/v1/models/0x00/infer"
            assert post_json(client, url, {"input_q": [1]}, FAST)["output_q"] == [1, 2]
        assert started and started[0].requests_read == 1
    finally:
        for n in started:
            n.close()


def test_postJson_always503_givesUpAtTheDeadline(
    node_factory: Callable[[Behaviour], FakeNode],
) -> None:
    node = node_factory(lambda _n, _c, sock: (_answer(sock, 503, b"{}", False), sock.close()))
    policy = RetryPolicy(deadline_s=0.6, first_delay_s=0.05, max_delay_s=0.1)
    t0 = time.monotonic()
    with new_client(5.0) as client, pytest.raises(NodeUnavailable, match="gave up after"):
        post_json(client, node.url, {"input_q": [1]}, policy)
    assert time.monotonic() - t0 < 2.0
    assert node.requests_read >= 3


def test_newClient_neverReusesAConnectionTheServerMayBeClosing(
    node_factory: Callable[[Behaviour], FakeNode],
) -> None:
    """A server that resets the second request on a kept-alive connection (the idle-timeout
    race that failed the first `make demo`): a fresh connection per request never meets it."""

    def behaviour(_n: int, on_conn: int, sock: socket.socket) -> None:
        if on_conn >= 1:
            _reset(sock)
        else:
            _answer(sock, 200, OK, keep_alive=True)

    node = node_factory(behaviour)
    with new_client(5.0) as client:
        for _ in range(5):
            post_json(client, node.url, {"input_q": [1]}, FAST)
    assert node.requests_read == 5
    assert node.connections == 5


def test_retryPolicy_delay_doublesAndIsCapped() -> None:
    p = RetryPolicy(deadline_s=60, first_delay_s=0.5, max_delay_s=4)
    assert [p.delay(a) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
