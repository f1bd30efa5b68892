"""The Server-Sent Events decoder: the standard's line endings and fields, and its bounds."""

from __future__ import annotations

import pytest

from tarash_router.engine.sse import EventDecoder, EventTooLarge


def decode(*chunks: bytes, limit: int = 1024) -> list[str]:
    decoder = EventDecoder(limit)
    return [data for chunk in chunks for data in decoder.feed(chunk)]


def test_an_event_is_its_data_lines_up_to_a_blank_line():
    assert decode(b'data: {"a": 1}\n\ndata: {"b": 2}\n\n') == ['{"a": 1}', '{"b": 2}']


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_of_the_standard_ends_a_line(ending):
    assert decode(b"data: x" + ending + ending + b"data: y" + ending + ending) == ["x", "y"]


def test_a_crlf_split_across_chunks_is_one_line_ending():
    assert decode(b"data: x\r", b"\n\r", b"\n") == ["x"]


def test_an_event_split_anywhere_across_chunks_comes_out_whole():
    body = b'data: {"status": "IN_QUEUE"}\n\n'
    assert decode(*(body[i:i + 1] for i in range(len(body)))) == ['{"status": "IN_QUEUE"}']


def test_comments_other_fields_and_a_byte_order_mark_are_read_past():
    body = b"\xef\xbb\xbf: keep-alive\n\nevent: status\nid: 7\nretry: 1000\ndata:x\n\n: ping\n\n"
    assert decode(body) == ["x"]


def test_several_data_lines_join_with_newlines_and_an_unfinished_event_is_not_dispatched():
    assert decode(b"data: a\ndata: b\n\ndata: c\n") == ["a\nb"]


def test_a_line_past_the_limit_is_refused_even_before_it_ends():
    with pytest.raises(EventTooLarge):
        decode(b"data: " + b"x" * 2000, limit=1024)
    with pytest.raises(EventTooLarge):
        decode(b": " + b"x" * 2000 + b"\n", limit=1024)


def test_an_event_whose_lines_add_up_past_the_limit_is_refused():
    with pytest.raises(EventTooLarge):
        decode(b"data: " + b"x" * 600 + b"\n" + b"data: " + b"y" * 600 + b"\n", limit=1024)
