#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/:
a handful of valid inputs and edge cases each, small enough to commit. Run it
again after changing a format; libFuzzer grows its own corpus from these
(scripts/fuzz.sh keeps what it finds out of the repository)."""
import base64
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


# ---- msgpack, in the smallest encodings (as wire::Writer writes) ----
class Ext:
    def __init__(self, type_, data):
        self.type, self.data = type_, data


def mp(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if v >= 0:
            for fmt, tag in ((">B", 0xCC), (">H", 0xCD), (">I", 0xCE), (">Q", 0xCF)):
                try:
                    return bytes([tag]) + struct.pack(fmt, v)
                except struct.error:
                    pass
        for fmt, tag in ((">b", 0xD0), (">h", 0xD1), (">i", 0xD2), (">q", 0xD3)):
            try:
                return bytes([tag]) + struct.pack(fmt, v)
            except struct.error:
                pass
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        n = len(b)
        if n < 32:
            return bytes([0xA0 | n]) + b
        if n < 256:
            return b"\xd9" + bytes([n]) + b
        return b"\xda" + struct.pack(">H", n) + b
    if isinstance(v, bytes):
        return b"\xc4" + bytes([len(v)]) + v
    if isinstance(v, Ext):
        return b"\xc7" + bytes([len(v.data)]) + struct.pack("b", v.type) + v.data
    if isinstance(v, list):
        n = len(v)
        head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
        return head + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        n = len(v)
        head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return head + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(type(v))


def timestamp(sec, ns):
    return Ext(-1, struct.pack(">IQ", ns, sec))


PURCHASE = {
    "event": "purchase", "orderId": "o-17", "userId": "u-3", "amount": 1250.5,
    "currency": "EUR",
    "items": [{"sku": "a-1", "qty": 2, "price": 10}, {"sku": "b-2", "qty": 1, "price": -3}],
    "ts": timestamp(1700000000, 5), "campaign": None, "ok": True,
}

# Events as clients send them and as ingest stores them.
EVENTS = {
    "named": [["production", "logs"], "k-1", {"timestamp": True}, PURCHASE],
    "routed": [None, None, None, {"event": "story_updated", "user": {"name": "Sue"}}],
    "options": [["revenue"], None, {"aggregate": {"window": "1d"}, "transform": ["clean"],
                                    "timestamp": {"field": "at", "format": "epoch_ms"}},
                {"amount": 3, "bin": b"\x00\xff"}],
}
STORED = {
    # A leading nil: the routes chose; [name, template...]: a route's transforms.
    "stored_routed": [[None, "logs", ["analytics", "clean"]], "k-2", None, PURCHASE],
    "stored_plain": [["d"], None, {}, {}],
}


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- wire: frames (protocol.h) ----
def frame(t, body):
    return bytes([1, t]) + body


def route(first, events, flags=0):
    body = struct.pack("<QI", first, len(events))
    for e in events:
        body += bytes([flags]) + struct.pack("<I", len(e)) + e
    return frame(3, body)


def wire_corpus():
    w = lambda n, d: write("wire", n, d)
    w("hello", frame(1, mp({"client": bytes(range(16)), "protocol": 1, "agent": "fork-router/0.1.0"})))
    w("welcome", frame(2, mp({"protocol": 1, "server": "forkd/0.1.0", "max_frame": 16 << 20,
                              "max_event": 1 << 20, "destinations": ["logs", "audit"]})))
    w("ack", frame(4, struct.pack("<IQQQQ", 2, 1, 5, 7, 7) + mp([[3, ["logs"]]])))
    w("nack", frame(5, struct.pack("<QQ", 4, 4) + mp(["FORK_INVALID_PAYLOAD", "payload must be a map"])))
    w("delivered", frame(6, struct.pack("<IQQ", 1, 1, 9)))
    w("route", route(1, [mp(e) for e in EVENTS.values()], flags=1))
    w("route_stored", route(7, [mp(e) for e in STORED.values()]))
    for name, e in list(EVENTS.items()) + list(STORED.items()):
        w("event_" + name, mp(e))
    # Edges: a count that lies, nesting at the limit, a truncated body.
    w("edge_lying_count", frame(3, struct.pack("<QI", 1, 0xFFFFFFFF) + b"\x00"))
    w("edge_deep", mp([None, None, None, {"d": [[[[[[[[[[[[1]]]]]]]]]]]]}]))
    w("edge_map32", b"\x94\xc0\xc0\xc0\xdf\xff\xff\xff\xff")
    w("edge_truncated_hello", frame(1, mp({"client": bytes(16)})[:-3]))


# ---- log: segment files (log_format.h, docs/log_format.md) ----
def crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


TABLE = crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def mask(c):
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


BLOCK = 32768


def segment(entries, first_lsn=1, block=BLOCK):
    """Frames entries as LogWriter does (FULL/FIRST/MIDDLE/LAST records)."""
    out = bytearray()
    for i, event in enumerate(entries):
        data = struct.pack("<Qq", first_lsn + i, 1700000000000000 + i) + bytes(range(16)) + \
            struct.pack("<Q", i + 1) + event
        begin = True
        while True:
            left_in_block = block - len(out) % block
            if left_in_block < 7:
                out += bytes(left_in_block)
                left_in_block = block
            frag = data[: left_in_block - 7]
            data = data[len(frag):]
            end = not data
            t = 1 if begin and end else 2 if begin else 4 if end else 3
            out += struct.pack("<IHB", mask(crc32c(bytes([t]) + frag)), len(frag), t) + frag
            begin = False
            if end:
                break
    return bytes(out)


def log_corpus():
    # The first byte is the harness's mode: 1 fixes checksums, 0 keeps them.
    w = lambda n, d, fix=0: write("log_reader", n, bytes([fix]) + d)
    events = [mp(e) for e in list(EVENTS.values()) + list(STORED.values())]
    w("entries", segment(events))
    w("entries_fix", segment(events), fix=1)
    w("empty", b"")
    seg = segment(events[:2])
    w("torn_tail", seg[:-5])
    w("zeroed", bytes(64) + seg)
    # An entry spanning blocks (FIRST, LAST) in a 32 KiB-aligned file.
    big = mp([["logs"], None, None, {"blob": "x" * 200}])
    w("spanning", segment([big] * 125), fix=1)
    # Checksums that hold around content that does not: short, not an event.
    w("bad_content", segment([b"", b"\x94\xc0\xc0\xc0", b"\x92\xc0\xc0", mp(5)]), fix=1)
    w("lsn_gap", segment([events[0]], first_lsn=1) + segment([events[1]], first_lsn=900), fix=1)


# ---- config: fork.yaml ----
CONFIGS = {
    "example": """data_dir: ./.fork
admin: 127.0.0.1:8787
transforms:
  clean_purchase:
    - redact: [card, user.email]
    - hash: { fields: [userId], salt: "${FORK_FUZZ_SET}" }
    - rename: { amount: total }
    - set: { source: web }
    - cast: { total: float }
    - timestamp: { field: received_at }
    - filter: 'total > 0'
    - validate: { required: [orderId, total], types: { total: number }, on_fail: dead_letter }
  daily_revenue:
    - aggregate: { window: 1d, time_field: ts, group_by: [currency],
                   measures: { revenue: sum(amount), orders: count() } }
  story:
    - template: { field: text, value: "{user.name} updated her page's story" }
destinations:
  production: { type: sqlite, path: ./data/production.db, table: orders, mode: upsert, key: orderId, priority: high }
  analytics:  { type: file, format: csv, path: ./data/analytics/, rotate: 1h, transforms: [clean_purchase] }
  revenue:    { type: sqlite, path: ./data/analytics.db, table: daily_revenue, transforms: [daily_revenue] }
  logs:       { type: file, format: jsonl, path: ./data/logs/events.jsonl }
  alerts:     { type: http, url: "http://127.0.0.1:9/hook", retry: { max_attempts: 10 } }
routes:
  - { when: 'event == "purchase"', to: [production, analytics, revenue, logs] }
  - { when: 'event == "purchase" && amount > 1000', to: [alerts], also: true }
  - { when: 'event == "story_updated"', to: [logs], transform: story }
""",
    "minimal": "destinations:\n  out: { type: stdout }\n",
    "limits": """wal: { fsync: never, segment_bytes: 1MiB, batch_ms: 1 }
limits: { max_frame: 1MiB, max_event: 64KiB, max_depth: 8 }
dedupe: { window: 1h, max_keys: 1000 }
destinations:
  pg: { type: postgres, url: "postgres://u@h/db", table: t, mode: upsert, key: id,
        batch: { max_events: 10, max_wait: 5ms }, backlog: { max_bytes: 1MiB, policy: shed } }
  ch: { type: clickhouse, url: "http://127.0.0.1:8123", table: t, rate_limit: { rate: 5, burst: 10 } }
routes:
  - { when: 'len(items) in [1, 2] && user.email.endsWith("@x.com")', to: pg, rollout: { percent: 10, key: userId } }
  - { to: [ch], shadow: true }
""",
    "errors": """destinations:
  a: { type: nope }
  b: { type: file, format: xml, path: "${FORK_FUZZ_UNSET}" }
routes:
  - { when: 'a ==', to: [c] }
""",
    "not_a_map": "- 1\n- [2, {3: 4}]\n",
    "anchors": "x: &a {type: stdout}\ndestinations: {o: *a, p: {<<: *a}}\n",
}


def config_corpus():
    for name, text in CONFIGS.items():
        write("config", name, text.encode())


# ---- expressions (transforms/expr.h), optionally NUL and a msgpack record ----
EXPRS = [
    'event == "purchase" && amount > 1000',
    'items[0].sku in ["a-1", "b-2"] || !exists(campaign)',
    'user.email.endsWith("@example.com") && lower(currency) == "eur"',
    'len(items) * 2 + amount / 3 - 1 % 2 >= -4.5e3',
    'matches(orderId, "^o-[0-9]+$") && contains(user["email"], \'@\')',
    'upper("x" + currency) != null && startsWith(note, "")',
    '((((((((((1))))))))))',
    '"unterminated',
    'a.b[99999999999999999999]',
]


def expr_corpus():
    for i, e in enumerate(EXPRS):
        write("expr", "expr%d" % i, e.encode())
    write("expr", "with_record", b"x.y[1] == 2 && z\0" + mp({"x": {"y": [1, 2]}, "z": 1.5}))


# ---- dead letters: lines of dead_letters/<destination>.jsonl ----
def letter(raw, **extra):
    line = {"_fork_id": "o-17", "destination": "hooks", "reason": "http 400: \"bad\"",
            "attempts": 3, "first_error": "e1", "last_error": "e2", "lsn": 42,
            "at": "2026-11-21T10:00:00.000000Z", "payload": {"orderId": "o-17"}}
    if raw is not None:
        line["raw"] = base64.b64encode(raw).decode()
    line.update(extra)
    import json
    return json.dumps(line, separators=(",", ":")).encode()


def dlq_corpus():
    w = lambda n, d: write("dead_letters", n, d)
    w("letter", letter(b"\x92" + mp({"timestamp": True}) + mp(PURCHASE)))
    w("letter_nil_options", letter(b"\x92\xc0" + mp({"n": 1})))
    w("letter_template", letter(b"\x92" + mp({"transform": ["clean"]}) + mp({"n": 1})))
    w("shed", b'{"_fork_id":null,"destination":"hooks","reason":"shed: over quota",'
              b'"shed":{"from_lsn":10,"to_lsn":5000,"events":1234},"at":"2026-11-21T10:00:00Z"}')
    w("aggregate_row", letter(None, _fork_id="2026-11-21T00:00:00Z/1d/[]"))
    # Edited by hand: cut raw, a payload that is not a map, trailing bytes.
    w("edited_cut", letter(b"\x92"))
    w("edited_not_map", letter(b"\x92\xc0\x05"))
    w("edited_trailing", letter(b"\x92\xc0\x80\x01"))
    w("not_json", b'{"destination":"hooks","reason":')


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    wire_corpus()
    log_corpus()
    config_corpus()
    expr_corpus()
    dlq_corpus()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print("make_corpus: wrote %s (%d bytes)" % (os.path.relpath(OUT), total))


if __name__ == "__main__":
    sys.exit(main())
