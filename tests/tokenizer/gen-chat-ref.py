#!/usr/bin/env python3
"""gen-chat-ref.py: reference renderings of chat prompts, for test-chat.

Usage: gen-chat-ref.py NAME=DIR ... > chat-ref.jsonl

For each NAME=DIR (a directory with tokenizer.json and tokenizer_config.json)
and each conversation below, renders the prompt of every turn (the messages
before the k-th assistant message, add_generation_prompt=True) with the
model's own Jinja chat template, as transformers' apply_chat_template does
(jinja2 sandbox, trim_blocks, lstrip_blocks), and tokenizes the text with HF
tokenizers (no special tokens added).  Writes
{"tokenizer":NAME,"conversation":I,"turn":K,"messages":[ALL],"text":STR,
"ids":[...]}.
"""
import json
import sys

from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer


def conv(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


CONVERSATIONS = [
    conv(("system", "You are a helpful assistant."), ("user", "Hello!"),
         ("assistant", "Hi there. How can I help?"), ("user", "List 3 colors."),
         ("assistant", "Red, green and blue."), ("user", "Thanks.")),
    conv(("system", "sys"), ("user", "Fix the bug.\nSteps Remaining: 30"),
         ("assistant", "<think>\nLet me look at the code first.\n</think>\n\n<function=view>\n</function>"),
         ("user", "Execution output of [view]:\nfile.py\nSteps Remaining: 29"),
         ("assistant", "<think>\n\nNow edit it.\n\n</think>\n\n\nDone: edited."),
         ("user", "<<< Finished >>>")),
    conv(("user", "  leading spaces and trailing  "), ("assistant", "  spaced reply  "),
         ("user", "\n\nnewlines first"), ("assistant", "x"), ("user", "   ")),
    conv(("user", "say <|im_end|> and <|eot_id|> literally"), ("assistant", "ok <|endoftext|> fine"),
         ("user", ""), ("assistant", ""), ("user", "empty before")),
    conv(("system", "中文系统提示"), ("user", "Cafe\u0301 日本語 😀👨‍👩‍👧"),
         ("assistant", "<think>r</think>答案"), ("user", "ok\t\ttabs\r\nCRLF")),
]


def render(template, messages, bos):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            bos_token=bos, eos_token="")


for arg in sys.argv[1:]:
    name, d = arg.split("=", 1)
    tok = Tokenizer.from_file(d + "/tokenizer.json")
    cfg = json.load(open(d + "/tokenizer_config.json", encoding="utf-8"))
    for ci, messages in enumerate(CONVERSATIONS):
        turn = 0
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            text = render(cfg["chat_template"], messages[:i], cfg.get("bos_token") or "")
            ids = tok.encode(text, add_special_tokens=False).ids
            rec = {"tokenizer": name, "conversation": ci, "turn": turn, "messages": messages,
                   "text": text, "ids": ids}
            sys.stdout.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
            turn += 1
