// make-tiny.mjs: writes the small test tokenizers under tests/data/tokenizer/.
//
// Usage: node make-tiny.mjs QWEN_TOKENIZER_JSON OUTDIR SAMPLES_DIR
// SAMPLES_DIR/tokenizer/ ("tiny" in the tests):  the 256 byte tokens and the first 2000 merges of the Qwen2 BPE
//         (merges written in the "a b" string form), Qwen's normalizer and
//         pre-tokenizer, five added tokens, and a tokenizer_config.json
//         with a ChatML chat template.
// llama3/: the same BPE and pre-tokenizer with Llama-3's markers as added
//         tokens and a Llama-3 chat template.
// flags/: the same BPE with a ByteLevel-only pre-tokenizer (GPT-2 regex,
//         add_prefix_space), no normalizer, merges in the pair form, and
//         added tokens that use lstrip, rstrip and single_word.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";

const [src, outDir, samplesDir] = process.argv.slice(2);
const q = JSON.parse(readFileSync(src, "utf8"));
const N_MERGES = 2000;

const qinv = new Map(Object.entries(q.model.vocab).map(([k, v]) => [v, k]));
const vocab = {};
for (let i = 0; i < 256; i++)
	vocab[qinv.get(i)] = i;
const merges = [];
for (const m of q.model.merges) {
	const [a, b] = Array.isArray(m) ? m : m.split(" ");
	if (!(a in vocab) || !(b in vocab))
		continue;
	if (!((a + b) in vocab))
		vocab[a + b] = Object.keys(vocab).length;
	merges.push([a, b]);
	if (merges.length === N_MERGES)
		break;
}
const n = Object.keys(vocab).length;
const added = (list) => list.map((t, i) => ({
	id: n + i, content: t.content, single_word: !!t.single_word, lstrip: !!t.lstrip,
	rstrip: !!t.rstrip, normalized: false, special: t.special !== false,
}));

const tiny = {
	version: "1.0", truncation: null, padding: null,
	added_tokens: added([
		{ content: "<|endoftext|>" }, { content: "<|im_start|>" }, { content: "<|im_end|>" },
		{ content: "<think>", special: false }, { content: "</think>", special: false },
	]),
	normalizer: q.normalizer, pre_tokenizer: q.pre_tokenizer, post_processor: null,
	decoder: q.decoder,
	model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "",
		end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, ignore_merges: false,
		vocab, merges: merges.map(([a, b]) => a + " " + b) },
};
const config = {
	add_bos_token: false, bos_token: null, eos_token: "<|im_end|>", pad_token: "<|endoftext|>",
	chat_template: "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
};
const flags = {
	...tiny,
	added_tokens: added([
		{ content: "<|endoftext|>" },
		{ content: "[L]", lstrip: true },
		{ content: "[R]", rstrip: true },
		{ content: "[LR]", lstrip: true, rstrip: true },
		{ content: "qzx", single_word: true, special: false },
		{ content: "[L]x", special: false },
	]),
	normalizer: null,
	pre_tokenizer: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
	model: { ...tiny.model, merges },
};
const llama3 = {
	...tiny,
	added_tokens: added([
		{ content: "<|begin_of_text|>" }, { content: "<|end_of_text|>" },
		{ content: "<|start_header_id|>" }, { content: "<|end_header_id|>" },
		{ content: "<|eot_id|>" },
	]),
	normalizer: null,
};
const llamaConfig = {
	bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>",
	chat_template: "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
};
const tinyDir = `${samplesDir}/tokenizer`;
for (const [dir, tok] of [[tinyDir, tiny], [`${outDir}/flags`, flags], [`${outDir}/llama3`, llama3]]) {
	mkdirSync(dir, { recursive: true });
	writeFileSync(`${dir}/tokenizer.json`, JSON.stringify(tok, null, 1) + "\n");
}
writeFileSync(`${tinyDir}/tokenizer_config.json`, JSON.stringify(config, null, 2) + "\n");
writeFileSync(`${outDir}/llama3/tokenizer_config.json`, JSON.stringify(llamaConfig, null, 2) + "\n");
