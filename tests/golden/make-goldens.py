#!/usr/bin/env python3
"""make-goldens.py: reference logits from HF transformers for test-forward-golden.

Run on a machine with torch and transformers (a GPU is not needed):

    tests/test-forward-golden --write-models /tmp/golden-models
    python3 tests/golden/make-goldens.py /tmp/golden-models tests/data/golden [NAME...]

test-forward-golden --write-models writes four models from the tests' own
helper (qwen2-tiny, llama3-tiny-tied, llama-bf16, qwen3-tiny) and three from
the model writer (tools/modelgen/model_writer.c: mw-tiny, mw-tiny-llama,
mw-qwen3-tiny).  For every model directory under MODELS_DIR (or only those
NAMEs), loads it with AutoModelForCausalLM in float32 (eager attention),
refusing a load that leaves a weight of the architecture uninitialized or
a tensor of the file unused (a misnamed q_norm would otherwise be random),
and writes OUT_DIR/NAME.json:
the last-position logits of a few fixed prompts (token ids, no tokenizer
involved) and the 8 greedy tokens that follow each, computed by re-running
the full sequence each step (no KV cache, no eos stopping), plus an FNV-1a 64
checksum of model.safetensors so the C test knows it rebuilt the same weights.
The Qwen3 models need transformers >= 4.51 (Qwen3ForCausalLM).
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


def load(model_dir):
    """The model in fp32, or SystemExit when its weights do not match the
    architecture exactly."""
    model, info = AutoModelForCausalLM.from_pretrained(
        model_dir, torch_dtype=torch.float32, attn_implementation="eager",
        output_loading_info=True)
    tied = getattr(model.config, "tie_word_embeddings", False)
    missing = [k for k in info.get("missing_keys", [])
               if not (tied and k == "lm_head.weight")]
    bad = missing + list(info.get("unexpected_keys", [])) + \
        list(info.get("mismatched_keys", []))
    if bad:
        raise SystemExit("%s: weights do not match %s: %s" % (
            model_dir, type(model).__name__, ", ".join(str(k) for k in bad)))
    return model


@torch.no_grad()
def golden(model):
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
    if len(sys.argv) < 3:
        sys.stderr.write("usage: make-goldens.py MODELS_DIR OUT_DIR [NAME...]\n")
        return 2
    models, outdir, only = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    names = sorted(os.listdir(models))
    for name in only:
        if name not in names:
            sys.stderr.write("make-goldens.py: no model %s in %s\n" % (name, models))
            return 2
    for name in names:
        d = os.path.join(models, name)
        if only and name not in only:
            continue
        if not os.path.isfile(os.path.join(d, "config.json")):
            continue
        model = load(d)
        rec = {
            "model": name,
            "architecture": type(model).__name__,
            "weights_fnv1a64": fnv1a64(os.path.join(d, "model.safetensors")),
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "prompts": golden(model),
        }
        path = os.path.join(outdir, name + ".json")
        with open(path, "w") as f:
            json.dump(rec, f)
            f.write("\n")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
