"""The tests' webhook receiver: quiet when a sender gives up, loud about its own errors."""

from __future__ import annotations

import socket
import struct

import pytest

from tests.webhook import Receiver


def _post(receiver: Receiver, body: bytes) -> socket.socket:
    host, port = receiver._server.server_address[:2]
    sender = socket.create_connection((host, port), timeout=5)
    sender.sendall(
        b"POST %s HTTP/1.1\r\nHost: hook\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (receiver.path.encode(), len(body), body)
    )
    return sender


def test_a_sender_that_gives_up_before_the_answer_prints_nothing(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # A CI log once held a stray "Exception occurred during processing of request" block:
    # the alert sender timed out on a hanging webhook, and the answer met a closed socket.
    with Receiver(delay=30) as receiver:
        sender = _post(receiver, b'{"text": "x"}')
        assert len(receiver.wait_for(1)) == 1
        # Closed with a reset, as a timed-out client's socket may be: the answer's first
        # write fails for certain, not only a later one.
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sender.close()
    # Leaving the receiver released the answer and waited for it.
    err = capfd.readouterr().err
    assert "Exception occurred" not in err and "Traceback" not in err


def test_an_error_of_the_receiver_itself_still_prints_its_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with Receiver() as receiver, _post(receiver, b"not json") as sender:
        sender.recv(1024)  # the receiver closes the connection without an answer
    err = capfd.readouterr().err
    assert "Exception occurred during processing of request" in err
    assert "JSONDecodeError" in err
