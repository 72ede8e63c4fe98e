#!/usr/bin/env python3
# Estimates what the stored pod states (table `pod_state`, JSON text) would take in a compact
# binary encoding, to size that change before building it (since migration 0013 the recorder
# stores them in its own binary encoding, recorder/codec.rs; for a database written since, this
# prints the stored size of those states):
# every key a 1-byte tag, integers as zigzag LEB128 varints, strings length-prefixed,
# booleans a tag alone, arrays and objects a varint count. No compression, no key
# dictionary beyond the tags; with --deltas, times (integers past 10^12 ms) as the difference
# from the state's scheduled (or start) time, which is written once.
# Usage: scripts/state-size.py t.db [--deltas]
import json, sqlite3, sys

def varint(n):
    n = (n << 1) ^ (n >> 63) if n < 0 else n << 1
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size

def size(v):
    if isinstance(v, bool):
        return 0
    if isinstance(v, int):
        return varint(v)
    if isinstance(v, str):
        return varint(len(v.encode())) + len(v.encode())
    if isinstance(v, list):
        return varint(len(v)) + sum(1 + size(x) for x in v)
    if isinstance(v, dict):
        return 1 + sum(1 + size(x) for x in v.values())
    if v is None:
        return 0
    raise TypeError(v)

def size_from(v, base):
    if isinstance(v, int) and not isinstance(v, bool) and v > 10**12:
        return varint(v - base)
    if isinstance(v, list):
        return varint(len(v)) + sum(1 + size_from(x, base) for x in v)
    if isinstance(v, dict):
        return 1 + sum(1 + size_from(x, base) for x in v.values())
    return size(v)

deltas = "--deltas" in sys.argv[2:]
db = sqlite3.connect(sys.argv[1])
n = text = binary = stored = 0
for (state,) in db.execute("SELECT state FROM pod_state"):
    if isinstance(state, bytes) and not state.startswith(b"{"):
        stored += len(state)
        continue
    n += 1
    text += len(state)
    value = json.loads(state)
    base = value.get("sa") or value.get("st") if deltas else None
    binary += size_from(value, base) + varint(base) if base else size(value)
if stored:
    rows = db.execute("SELECT count(*) FROM pod_state").fetchone()[0] - n
    print(f"{rows} states in the binary encoding: {stored / rows:.1f} bytes on average, "
          f"{stored / 1e6:.1f} MB")
if n:
    print(f"{n} states: JSON {text / n:.1f} bytes on average, binary {binary / n:.1f} "
          f"({100 * binary / text:.0f} %); {text / 1e6:.1f} MB -> {binary / 1e6:.1f} MB")
