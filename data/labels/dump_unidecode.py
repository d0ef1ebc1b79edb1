"""Dump Python unidecode's transliteration of every code point from U+0080 to U+2FFFF as JSON lines
`[codepoint, "ascii"]`, for `src/labels/unidecode_table.rs` (see SOURCE.md).

    python -m venv venv && venv/bin/pip install unidecode==1.4.0
    venv/bin/python data/labels/dump_unidecode.py > /tmp/unidecode-1.4.0.jsonl
    UNIDECODE_DUMP=/tmp/unidecode-1.4.0.jsonl cargo test --release --lib \
        labels::lyrics::tests::regenerate -- --ignored --nocapture
"""
import json
import sys

import unidecode

sys.stderr.write(f"unidecode {getattr(unidecode, '__version__', '?')}\n")
for cp in range(0x80, 0x30000):
    if 0xD800 <= cp < 0xE000:
        continue
    sys.stdout.write(json.dumps([cp, unidecode.unidecode(chr(cp))]) + "\n")
