// gen-vectors.mjs: writes reference token ids for the tokenizer test.
//
// Usage: node gen-vectors.mjs TOKENIZER_JSON [R2EGYM_JSONL] > vectors.jsonl
// Needs the npm package @huggingface/tokenizers (an implementation
// independent of ours) resolvable from the working directory; install it in
// a git-ignored folder, e.g.  cd _scratch/node && npm install @huggingface/tokenizers
// Each output line is {"text": STR, "ids": [INT, ...]}.  The texts cover the
// corners of the Qwen2 pre-tokenizer and BPE; R2E-Gym excerpts add the text
// the engine really sees.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(pathToFileURL(process.cwd() + "/").href);
const { Tokenizer } = require("@huggingface/tokenizers");

const [tokPath, r2Path] = process.argv.slice(2);
const tokJson = JSON.parse(readFileSync(tokPath, "utf8"));
const tok = new Tokenizer(tokJson, {});

const texts = [
	"Hello world",
	"Hello, world! How are you today?",
	"",
	" ",
	"a",
	"The quick brown fox jumps over the lazy dog.",
	// code
	"def foo(x, y):\n    return x + y\n\n\nclass Bar:\n    pass\n",
	"for (int i = 0; i < n; i++) {\n\tsum += a[i] * b[i];\n}\n",
	"if __name__ == \"__main__\":\n    main()",
	"    indented    with   many     spaces   ",
	"x=1;y=2;z=x**y//3%4",
	"#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
	"diff --git a/aiohttp/resolver.py b/aiohttp/resolver.py\n@@ -1,4 +1,4 @@\n-    raise OSError(msg)\n+    raise OSError(None, msg)\n",
	// prose with punctuation and quotes
	"“Smart quotes” and ‘single’ ones — with dashes… and ellipses.",
	"It's John's book; they're here, we've gone, I'm fine, you'll see, he'd go.",
	"IT'S JOHN'S; THEY'RE WE'VE I'M YOU'LL HE'D DON'T",
	"It'S tHeY'Re We'Ve I'M yOu'Ll hE'd dOn'T",
	"'s 't 're 've 'm 'll 'd ''s 'x '",
	// digits
	"1234567890",
	"Version 3.14159 released on 2024-05-17 at 12:30:45, costs $1,234.56",
	"٣٤٥ ١٢ and ⅷ and ²³ and 12ab34",
	// CJK and other scripts
	"你好，世界！这是一个测试。",
	"日本語のテキストです。カタカナとひらがな。",
	"한국어 텍스트입니다.",
	"Привет, мир! Ελληνικά. עברית. العربية.",
	"mixed 中文 English 混合 text123文字",
	// emoji
	"I love pizza 🍕 and 🎉 parties 😀😃😄",
	"Family: 👨‍👩‍👧‍👦 and 👩🏽‍💻 and flags 🇺🇸🇯🇵 and ❤️‍🔥",
	"🏳️‍🌈 🧑‍🤝‍🧑 👍🏿",
	// combining characters: NFC composes these
	"Cafe\u0301 nai\u0308ve re\u0301sume\u0301 A\u030Angstro\u0308m",
	"e\u0301\u0301 o\u0308\u0304 \u1100\u1161\u11A8 Å vs A\u030A",
	"precomposed: café naïve",
	// whitespace
	"a          b",
	"line1\n\n\n\nline2",
	"trailing spaces   ",
	"trailing newlines\n\n\n",
	"  \n  \n\t\t\n   x",
	"\r\n\r\nwindows\r\nline endings\r\n",
	"tabs\t\tand\t \tspaces",
	"                                                                end",
	"\n",
	"\n\n",
	"   ",
	"x \n",
	"unicode spaces:\u00a0\u2003\u3000here\u2009and",
	// control characters
	"ctrl\u0001\u0002\u0003 bell\u0007 esc\u001b[31mred\u001b[0m del\u007f",
	"form\ffeed\vvertical tab\u0000nul",
	// special and added tokens in text
	"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
	"text before<|endoftext|>text after",
	"<|im_start|><|im_end|><|endoftext|>",
	"<think>\nreasoning here\n</think>\n\nanswer",
	"<tool_call>\n{\"name\": \"f\"}\n</tool_call>",
	"< |im_start| > <|im_start <|im_end|",
	"  <|im_end|>  spaced  <|im_start|>  ",
	// odd bytes of punctuation
	"!!!???...,,,;;;:::---___===+++***&&&^^^%%%$$$###@@@",
	"<<<>>> {{{}}} [[[]]] ((())) ||| \\\\\\ /// ``` ~~~",
	"http://example.com/path?q=1&r=2#frag user@example.com",
	"Ａｂｃ full-width １２３ ｈａｌｆ",
	"ﬁ ligature and ℌ and ① circled",
	// added-token flags (used by the flags/ test tokenizer)
	"a [L] b   [L]c",
	"x   [R]   y [R]\n\nz",
	"  [LR]  mid  [LR]",
	"qzx qzxs sqzx qzx_ 1qzx qzx! (qzx) qzxqzx",
	"[L]x and [L]xy and  [L]x",
	"éqzx qzxé qzx",
];

function r2egymTexts(path) {
	const out = [];
	const lines = readFileSync(path, "utf8").split("\n").filter((l) => l.length);
	for (const line of lines) {
		const t = JSON.parse(line);
		const cut = (s, n) => Array.from(s).slice(0, n).join("");
		out.push(cut(t.agent_args.system_prompt, 3000));
		out.push(cut(t.problem_statement, 2000));
		for (const s of t.trajectory_steps.slice(0, 4)) {
			out.push(cut(s.thought, 1500));
			out.push(s.action);
			out.push(cut(s.observation, 2500));
		}
	}
	return out;
}

if (r2Path)
	texts.push(...r2egymTexts(r2Path));

// U+0000: a JSON string may hold it, and byte-level BPE encodes it as the
// byte character U+0100 like any other byte (last, so that the lines
// above keep their places).
texts.push("\u0000", "a\u0000b", "\u0000\u0000\u0000", "x = \"\\0\"\u0000\n",
	"Hello\u0000 world", " \u0000", "\u0000<|im_end|>", "end\u0000",
	"\u0000\u0000ab\u0000 \u0000\n\u0000");

for (const text of texts) {
	const enc = tok.encode(text, { add_special_tokens: false });
	process.stdout.write(JSON.stringify({ text, ids: enc.ids }) + "\n");
}
