// encode-chat-golden.mjs: adds Hugging Face's ids to the prompts written by
// gen-chat-golden.py.
//
// Usage: node encode-chat-golden.mjs TEXTS.jsonl NAME=TOKENIZER_JSON ... > prompts.jsonl
// Needs the npm package @huggingface/tokenizers (an implementation
// independent of ours) resolvable from the working directory or NODE_PATH;
// install it in a git-ignored folder.  Every text of the Qwen templates
// (qwen2.5, qwen3) is encoded with each tokenizer named tiny or qwen, every
// llama3 text with the tokenizer named llama3: one output line each,
//   {"template","conversation","turn","tokenizer":NAME,"ids":[...]}
// as encode(text, add_special_tokens=False) gives them.  A record whose
// template raised ("error") is copied with the tokenizer names and no ids.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(pathToFileURL(process.cwd() + "/").href);
let Tokenizer;
try {
	({ Tokenizer } = require("@huggingface/tokenizers"));
} catch {
	({ Tokenizer } = await import("@huggingface/tokenizers"));
}

const [textsPath, ...specs] = process.argv.slice(2);
const toks = specs.map((s) => {
	const [name, path] = s.split("=");
	return { name, tok: new Tokenizer(JSON.parse(readFileSync(path, "utf8")), {}) };
});
const fits = (template, name) => (template === "llama3") === (name === "llama3");

for (const line of readFileSync(textsPath, "utf8").split("\n")) {
	if (!line) continue;
	const rec = JSON.parse(line);
	for (const { name, tok } of toks) {
		if (!fits(rec.template, name)) continue;
		const out = { template: rec.template, conversation: rec.conversation, turn: rec.turn,
			      tokenizer: name };
		if (rec.error !== undefined) out.error = rec.error;
		else out.ids = tok.encode(rec.text, { add_special_tokens: false }).ids;
		process.stdout.write(JSON.stringify(out) + "\n");
	}
}
