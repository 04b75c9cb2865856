#!/usr/bin/env python3
"""make-goldens.py: reference logits from HF transformers for test-forward-golden.

Run on a machine with torch and transformers (a GPU is not needed):

    _build/x/tests/test-forward-golden --write-models /tmp/golden-models
    python3 tests/golden/make-goldens.py /tmp/golden-models tests/data/golden

test-forward-golden --write-models writes three models from the tests' own
helper and two from the model writer (tools/modelgen/model_writer.c, presets "tiny"
and "tiny-llama").  For every model directory under MODELS_DIR, loads it with
AutoModelForCausalLM in float32 (eager attention), and writes OUT_DIR/NAME.json:
the last-position logits of a few fixed prompts (token ids, no tokenizer
involved) and the 8 greedy tokens that follow each, computed by re-running
the full sequence each step (no KV cache, no eos stopping), plus an FNV-1a 64
checksum of model.safetensors so the C test knows it rebuilt the same weights.
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM

N_GREEDY = 8


def fnv1a64(path):
    h = 0xCBF29CE484222325
    with open(path, "rb") as f:
        for byte in f.read():
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def prompts(vocab):
    """Fixed prompts: short, long, repeated tokens, the vocabulary's edges."""
    return [
        [1, 5, 9, 13],
        [(i * 37 + 11) % vocab for i in range(40)],
        [7] * 12,
        [0, vocab - 1, 3, vocab - 2, 1],
        [42 % vocab],
    ]


@torch.no_grad()
def golden(model_dir):
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    vocab = model.config.vocab_size
    out = []
    for ids in prompts(vocab):
        seq = torch.tensor([ids], dtype=torch.long)
        last = model(seq).logits[0, -1].double()
        greedy = []
        for _ in range(N_GREEDY):
            nxt = int(torch.argmax(model(seq).logits[0, -1]))
            greedy.append(nxt)
            seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
        out.append({"tokens": ids, "last_logits": [float(x) for x in last],
                    "greedy": greedy})
    return out


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: make-goldens.py MODELS_DIR OUT_DIR\n")
        return 2
    models, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    for name in sorted(os.listdir(models)):
        d = os.path.join(models, name)
        if not os.path.isfile(os.path.join(d, "config.json")):
            continue
        rec = {
            "model": name,
            "weights_fnv1a64": fnv1a64(os.path.join(d, "model.safetensors")),
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "prompts": golden(d),
        }
        path = os.path.join(outdir, name + ".json")
        with open(path, "w") as f:
            json.dump(rec, f)
            f.write("\n")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
