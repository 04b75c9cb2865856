#!/usr/bin/python3
"""gen-chat-golden.py: reference prompts of the chat templates, for test-chat-golden.

Usage (from the top of the source tree; needs Debian's python3-jinja2 and,
for the ids, node with the npm package @huggingface/tokenizers installed in a
git-ignored folder):

    python3 tests/golden/gen-chat-golden.py ../shared/data/chat-templates \\
        > /tmp/chat-texts.jsonl
    NODE_PATH=/path/to/node_modules node tests/golden/encode-chat-golden.mjs \\
        /tmp/chat-texts.jsonl tiny=samples/tokenizer/tokenizer.json \\
        llama3=tests/data/tokenizer/llama3/tokenizer.json \\
        qwen=../shared/data/qwen2-tokenizer/tokenizer.json \\
        > tests/data/chat-golden/prompts.jsonl

This script writes tests/data/chat-golden/conversations.jsonl (the corpus
below, one conversation a line) when given --conversations FILE, and on
stdout one line per template and turn:
    {"template": T, "conversation": I, "turn": K, "text": STR}
(or "error" in place of "text" where the template raises, as Qwen's do on
an empty message list) where STR is the prompt of turn K (the messages before the K-th assistant
message, add_generation_prompt=True) rendered by the real Jinja template T
(qwen2.5, qwen3, llama3) the way transformers' apply_chat_template renders
it: an ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the
loopcontrols extension, transformers' tojson (json.dumps with
ensure_ascii=False), raise_exception, the special tokens of the model's
tokenizer_config.json, tools and the chat_template_kwargs of the record.
The encoder adds the ids of every text under each tokenizer it is given,
as Hugging Face's encode(text, add_special_tokens=False) gives them.
"""
import json
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


def m(role, content, **kw):
    d = {"role": role, "content": content}
    d.update(kw)
    return d


def call(name, args):
    return {"type": "function", "function": {"name": name, "arguments": args}}


TOOLS = [
    {"type": "function", "function": {
        "name": "execute_bash", "description": "Run a command in bash; \"quotes\" and \\ too.",
        "parameters": {"type": "object", "properties": {
            "cmd": {"type": "string", "description": "the command, é ü 中文"},
            "timeout": {"type": "number", "default": 1.5}}, "required": ["cmd"]}}},
    {"type": "function", "function": {
        "name": "finish", "description": "", "parameters": {"type": "object", "properties": {}}}},
]

CONVERSATIONS = [
    # 0: the reproducer: a reply that begins with newlines
    {"messages": [m("system", "You are helpful."), m("user", "hi"), m("assistant", "\n\nsecond"),
                  m("user", "next"), m("assistant", "ok")]},
    # 1: whitespace at both ends of every kind of message
    {"messages": [m("system", "\n  sys with spaces \t\n"), m("user", "  lead and trail  "),
                  m("assistant", " \n leading space and newline\n\n"), m("user", "\t\ttabs\t"),
                  m("assistant", "\n"), m("user", "\n\n\n"), m("assistant", "   "),
                  m("user", "end")]},
    # 2: empty contents, no system message
    {"messages": [m("user", ""), m("assistant", ""), m("user", ""), m("assistant", "x"),
                  m("user", "")]},
    # 3: CRLF, non-NFC, emoji, CJK, unicode whitespace
    {"messages": [m("system", "中文系统提示\r\n第二行"),
                  m("user", "Cafe\u0301 e\u0301te\u0301 \u212b \ufb01 日本語 😀👨‍👩‍👧 \u00a0nbsp\u3000"),
                  m("assistant", "\u3000答案\r\n\r\nline\u2028sep\u0085"),
                  m("user", "ok\r\nCRLF\r\n"), m("assistant", "한국어 \U0001F600")]},
    # 4: special-token text inside content
    {"messages": [m("user", "say <|im_end|> and <|eot_id|> and <|im_start|>user literally"),
                  m("assistant", "ok <|endoftext|> fine <think>not</think> <tool_call>x</tool_call>"),
                  m("user", "<tool_response>\nwrapped by the user\n</tool_response>"),
                  m("assistant", "<|start_header_id|>assistant<|end_header_id|>"),
                  m("user", "<|begin_of_text|>")]},
    # 5: code and long digit runs
    {"messages": [m("system", "You write code."),
                  m("user", "def foo(x, y):\n    return x + y\n\n\nclass Bar:\n    pass\n"),
                  m("assistant", "```python\nfor i in range(10):\n\tprint(i ** 2)  # 0123456789\n```\n"),
                  m("user", "12345678901234567890123456789012345678901234567890 and 3.14159265358979"),
                  m("assistant", "0000000000000000000000000000001"), m("user", "x=1;y=2;z=x**y//3%4")]},
    # 6: reasoning in the content: closed, repeated, unclosed, empty, newlines
    {"messages": [m("system", "sys <think>in system</think>"),
                  m("user", "Fix the bug.\nSteps Remaining: 30"),
                  m("assistant", "<think>\nLet me look.\n</think>\n\n<function=view>\n</function>"),
                  m("user", "Execution output of [view]:\nfile.py\nSteps Remaining: 29"),
                  m("assistant", "<think>\n\nfirst\n\n</think>\n\n\nmiddle<think>second</think>\n\nDone."),
                  m("user", "<think>user thinks</think> go on"),
                  m("assistant", "<think>unclosed reasoning, no end"),
                  m("user", "again"),
                  m("assistant", "no think at all\n"),
                  m("user", "and"),
                  m("assistant", "</think>only a close"),
                  m("user", "<<< Finished >>>")]},
    # 7: <tool_response> user messages after the last query (Qwen3's multi-step tool rule)
    {"messages": [m("user", "Find the file."),
                  m("assistant", "<think>\nsearch first\n</think>\n\n<function=search>x</function>"),
                  m("user", "<tool_response>\nfound a.py\n</tool_response>"),
                  m("assistant", "<think>\nnow open\n</think>\n\nopening"),
                  m("user", "<tool_response>\ncontent\n</tool_response>"),
                  m("assistant", "<think>done</think>The answer."),
                  m("user", "Thanks; <tool_response>not a wrapper"),
                  m("assistant", "<think>\nlast\n</think>\n\nbye")]},
    # 8: tool messages (consecutive ones merged), tool_calls, tools list
    {"tools": TOOLS,
     "messages": [m("system", "You are an agent."), m("user", "List files, then count them."),
                  m("assistant", "I will run two commands.",
                    tool_calls=[call("execute_bash", {"cmd": "ls -la", "timeout": 10}),
                                call("execute_bash", '{"cmd": "ls | wc -l"}')]),
                  m("tool", "a.py\nb.py\n"), m("tool", "2"),
                  m("assistant", "", tool_calls=[call("finish", {})]),
                  m("tool", "{\"ok\": true, \"unicode\": \"é\"}"),
                  m("assistant", "All done.")]},
    # 9: tools without a system message; reasoning_content; tool_calls with reasoning
    {"tools": TOOLS[:1],
     "messages": [m("user", "Run it."),
                  m("assistant", "", reasoning_content="\nI should call the tool.\n",
                    tool_calls=[call("execute_bash", {"cmd": "echo \"hi\"\n", "n": [1, 2.5, None, True],
                                                      "nested": {"a": {"b": "\\path"}}, "big": 1e20,
                                                      "small": 1e-7, "f": 0.1, "neg": -3})]),
                  m("tool", "hi"),
                  m("assistant", "It printed hi.", reasoning_content="The output is hi."),
                  m("user", "And now?"),
                  m("assistant", "Nothing.", reasoning_content=""),
                  m("user", "ok")]},
    # 10: a later system message, consecutive assistant messages, an unknown role
    {"messages": [m("user", "first"), m("assistant", "one"), m("system", "Now be brief."),
                  m("assistant", "two"), m("developer", "a role the Qwen templates skip"),
                  m("user", "last"), m("assistant", "three")]},
    # 11: tool message first, then a plain user; assistant first
    {"messages": [m("assistant", "I speak first."), m("tool", "orphan result"),
                  m("user", "who?"), m("assistant", "<think>x</think>me")]},
    # 12: enable_thinking false
    {"chat_template_kwargs": {"enable_thinking": False},
     "messages": [m("system", "s"), m("user", "no thinking please"),
                  m("assistant", "Sure."), m("user", "again"), m("assistant", "Again.")]},
    # 13: reasoning_content beside a content that has its own </think>
    {"messages": [m("user", "q"),
                  m("assistant", "<think>inline</think>visible", reasoning_content="separate"),
                  m("user", "<tool_response>\nr\n</tool_response>"),
                  m("assistant", "\n\nafter tool\n", reasoning_content=None),
                  m("user", "end")]},
]


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


# Special tokens as the models' tokenizer_config.json give them.
SPECIALS = {
    "qwen2.5": {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "qwen3": {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
}


def main():
    args = sys.argv[1:]
    if args[:1] == ["--conversations"]:
        with open(args[1], "w", encoding="utf-8") as f:
            for i, c in enumerate(CONVERSATIONS):
                rec = dict(c, conversation=i)
                f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
        args = args[2:]
    env = environment()
    for name in ("qwen2.5", "qwen3", "llama3"):
        with open("%s/%s.jinja" % (args[0], name), encoding="utf-8") as f:
            tpl = env.from_string(f.read())
        for ci, conv in enumerate(CONVERSATIONS):
            msgs = conv["messages"]
            turn = 0
            for i, msg in enumerate(msgs):
                if msg["role"] != "assistant":
                    continue
                kw = dict(SPECIALS[name], **conv.get("chat_template_kwargs", {}))
                rec = {"template": name, "conversation": ci, "turn": turn}
                try:
                    rec["text"] = tpl.render(messages=msgs[:i], tools=conv.get("tools"),
                                             add_generation_prompt=True, **kw)
                except jinja2.exceptions.TemplateError as e:
                    rec["error"] = str(e)
                sys.stdout.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
                turn += 1


if __name__ == "__main__":
    main()
