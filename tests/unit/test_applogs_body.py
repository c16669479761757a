"""The docker backend's own reader of docker's chunked log responses (_Body)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from slipway.backends.docker_logs import _Body


class Pieces:
    """A reader whose read1 hands out the given pieces, one per call, then b""."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)
        self.asked: list[int] = []

    def read1(self, n: int) -> bytes:
        self.asked.append(n)
        return self.pieces.pop(0) if self.pieces else b""


def body(pieces: list[bytes], chunked: bool = True, length: int | None = None) -> _Body:
    fp = SimpleNamespace(fp=Pieces(pieces), chunked=chunked, length=length)
    return _Body(SimpleNamespace(raw=SimpleNamespace(_fp=fp)))


def read_all(b: _Body) -> list[bytes]:
    out = []
    while data := b.read():
        out.append(data)
    return out


def test_many_chunks_in_one_read_come_back_together() -> None:
    wire = b"5\r\nhello\r\n1\r\n \r\n5;ext=1\r\nworld\r\n0\r\n\r\n"
    assert read_all(body([wire])) == [b"hello world"]


def test_chunks_split_anywhere_across_reads() -> None:
    wire = b"5\r\nhello\r\n6\r\n world\r\na\r\n0123456789\r\n0\r\n\r\n"
    for size in (1, 2, 3, 7):
        pieces = [wire[i : i + size] for i in range(0, len(wire), size)]
        assert b"".join(read_all(body(pieces))) == b"hello world0123456789"


def test_the_last_chunk_ends_the_body_even_if_more_follows() -> None:
    b = body([b"3\r\nabc\r\n0\r\n\r\n", b"3\r\nxyz\r\n"])
    assert read_all(b) == [b"abc"]
    assert b.read() == b""


def test_a_connection_that_ends_mid_body_ends_the_stream() -> None:
    assert read_all(body([b"a\r\n01234"])) == [b"01234"]


@pytest.mark.parametrize("wire", [b"zz\r\nabc\r\n", b"5" * 300])
def test_a_body_that_is_not_chunked_raises_value_error(wire: bytes) -> None:
    with pytest.raises(ValueError):
        read_all(body([wire]))


def test_not_chunked_with_a_length_stops_there() -> None:
    b = body([b"abc", b"def", b"never asked"], chunked=False, length=6)
    assert read_all(b) == [b"abc", b"def"]
    assert b._fp.asked == [6, 3]


def test_not_chunked_without_a_length_reads_to_the_end() -> None:
    assert read_all(body([b"abc", b"def"], chunked=False)) == [b"abc", b"def"]
