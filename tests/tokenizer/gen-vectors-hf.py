#!/usr/bin/env python3
"""gen-vectors-hf.py: re-encode the texts of a vectors file with HF tokenizers.

Usage: gen-vectors-hf.py TOKENIZER_JSON VECTORS_IN > VECTORS_OUT

Reads {"text":...} lines (the ids present are ignored) and writes
{"text":..., "ids":[...]} with the ids of the Rust `tokenizers` package, the
reference implementation.  Used for the flags/ test tokenizer, whose
single_word token the JavaScript implementation does not honour; for the
other tokenizers it cross-checks gen-vectors.mjs (both agree there).
"""
import json
import sys

from tokenizers import Tokenizer

tok = Tokenizer.from_file(sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f:
    for line in f:
        text = json.loads(line)["text"]
        ids = tok.encode(text, add_special_tokens=False).ids
        sys.stdout.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=False,
                                    separators=(",", ":")) + "\n")
