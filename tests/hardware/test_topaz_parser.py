"""Topaz packet parser: property tests (never raises, round-trips, skips garbage) and stroke building."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hardware.signature_pad.topaz import (
    INVALID,
    PAD_MODELS,
    StrokeBuilder,
    TopazPacket,
    TopazParser,
    encode_packet,
    normalise,
    resolve_model,
)

coords = st.integers(min_value=0, max_value=0x0FFF)
packets = st.builds(
    TopazPacket,
    x=coords,
    y=coords,
    pen_down=st.booleans(),
    proximity=st.booleans(),
    packet_type=st.sampled_from([0, 1, 4]),
)


def encode(p: TopazPacket) -> bytes:
    return encode_packet(p.x, p.y, p.pen_down, p.proximity, p.packet_type)


# Garbage that cannot form a packet: a sync byte followed by fewer than 4 body bytes
# (the next sync byte resynchronises), or body bytes with no sync byte before them.
low = st.integers(min_value=0, max_value=0x7F)
high = st.integers(min_value=0x80, max_value=0xFF)
garbage_chunk = st.tuples(high, st.lists(low, max_size=3)).map(lambda t: bytes([t[0], *t[1]]))
garbage = st.tuples(st.lists(low, max_size=6), st.lists(garbage_chunk, max_size=4)).map(
    lambda t: bytes(t[0]) + b"".join(t[1]))


@given(st.binary(max_size=400), st.integers(min_value=1, max_value=17))
def test_random_bytes_never_raise(data: bytes, chunk: int) -> None:
    parser = TopazParser()
    for i in range(0, len(data), chunk):
        for packet in parser.feed(data[i : i + chunk]):
            assert 0 <= packet.x <= 0x0FFF and 0 <= packet.y <= 0x0FFF


@given(st.lists(packets, max_size=40), st.integers(min_value=1, max_value=11))
def test_encode_then_decode_round_trips_in_any_chunking(items: list[TopazPacket], chunk: int) -> None:
    data = b"".join(encode(p) for p in items)
    parser = TopazParser()
    out = []
    for i in range(0, len(data), chunk):
        out.extend(parser.feed(data[i : i + chunk]))
    assert out == items
    assert parser.skipped == 0


@given(st.lists(st.tuples(garbage, packets), max_size=25), garbage)
def test_garbage_between_packets_is_skipped(pairs: list[tuple[bytes, TopazPacket]], tail: bytes) -> None:
    data = b"".join(g + encode(p) for g, p in pairs) + tail
    parser = TopazParser()
    assert parser.feed(data) == [p for _, p in pairs]
    assert parser.skipped >= sum(len(g) for g, _ in pairs) - 3 * len(pairs)  # (a trailing partial packet waits)


def test_non_coordinate_packet_types_are_ignored_not_misread() -> None:
    parser = TopazParser()
    data = encode_packet(100, 200, True, packet_type=2) + encode_packet(300, 400, True)
    assert parser.feed(data) == [TopazPacket(300, 400, True, True, 0)]
    assert parser.ignored_packets == 1


def test_bit_layout_matches_the_protocol() -> None:
    # x = (b2 & 0x1F) << 7 | (b1 & 0x7F); pen down = bit 0, proximity = bit 6, sync = bit 7.
    assert encode_packet(0x0ABC, 0x0123, pen_down=True, proximity=True) == bytes(
        [0xC1, 0x0ABC & 0x7F, 0x0ABC >> 7, 0x0123 & 0x7F, 0x0123 >> 7])
    assert TopazParser().feed(bytes([0x80, 0x7F, 0x1F, 0x7F, 0x1F])) == [TopazPacket(INVALID, INVALID, False, False)]


def test_pen_down_and_up_build_strokes_and_invalid_points_lift_the_pen() -> None:
    model = resolve_model({})
    builder = StrokeBuilder(model)
    seq = [
        TopazPacket(600, 400, False, True),  # hovering
        TopazPacket(600, 400, True, True),
        TopazPacket(700, 450, True, True),
        TopazPacket(700, 450, False, True),  # lift
        TopazPacket(1000, 500, True, True),
        TopazPacket(INVALID, INVALID, True, True),  # out of the signing area
        TopazPacket(1100, 600, True, True),
    ]
    for t, packet in enumerate(seq):
        builder.add(packet, t * 10)
    strokes = builder.frozen()
    assert [s.raw for s in strokes] == [[(600, 400), (700, 450)], [(1000, 500)], [(1100, 600)]]
    assert strokes[0].points[1].t_ms == 20


def test_normalisation_uses_the_model_range_and_clamps() -> None:
    model = PAD_MODELS["T-S460"]
    assert normalise(model, model.x_min, model.y_min) == (0.0, 0.0)
    assert normalise(model, model.x_max, model.y_max) == (1.0, 1.0)
    assert normalise(model, 0, 4095) == (0.0, 1.0)
    custom = resolve_model({"model": "t-lbk462", "x_min": 100, "x_max": 1100})
    assert normalise(custom, 600, custom.y_min) == (0.5, 0.0)
