/*
 * prompt_bound.c: lower bounds on prompt tokens from bytes (see
 * prompt_bound.h).
 *
 * Only what every chat template keeps counts: the contents of the system,
 * user and tool messages, less the white space at their ends, which a
 * template may trim (Llama 3's does, as Python's str.strip).  Assistant messages do
 * not count: a template may drop part of them (Qwen3 drops earlier
 * reasoning).  Markers and roles only add tokens, so leaving them out keeps
 * the bound low.  The tokenizer's bytes_per_token already allows for
 * normalization (a code point of 4 bytes can normalize to one of 1).
 */
#include "engine/prompt_bound.h"

#include <stdbool.h>
#include <string.h>

/* Python's str.isspace, which Jinja's trim uses. */
static bool is_space(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
	       c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202f || c == 0x205f || c == 0x3000;
}

/* The code point of the UTF-8 sequence at s[0, n) (its length in *len);
 * 0xfffd, never a space, for a bad one. */
static uint32_t decode(const unsigned char *s, size_t n, size_t *len)
{
	size_t k = s[0] < 0x80 ? 1 : s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
	uint32_t c = k == 1 ? s[0] : s[0] & (0x3f >> (k - 1));

	*len = 1;
	if (k > n)
		return 0xfffd;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0xfffd;
		c = c << 6 | (s[i] & 0x3f);
	}
	*len = k;
	return c;
}

/* Bytes of s left once the white space at both ends is trimmed. */
static size_t kept_bytes(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t a = 0, len;

	while (a < n && is_space(decode(s + a, n - a, &len)))
		a += len;
	while (n > a) {
		size_t b = n - 1;

		while (b > a && (s[b] & 0xc0) == 0x80)
			b--;
		if (!is_space(decode(s + b, n - b, &len)) || b + len != n)
			break;
		n = b;
	}
	return n - a;
}

int64_t eng_prompt_min_tokens(const json_t *record, size_t end, size_t bytes_per_token)
{
	const json_t *msgs = json_object_get(record, "messages");
	size_t bytes = 0;

	if (bytes_per_token == 0)
		return 0;
	for (size_t i = 0; i < end && i < json_array_size(msgs); i++) {
		const json_t *m = json_array_get(msgs, i);
		const json_t *content = json_object_get(m, "content");
		const char *role = json_string_value(json_object_get(m, "role"));

		if (json_is_string(content) && !(role && !strcmp(role, "assistant")))
			bytes += kept_bytes(json_string_value(content), json_string_length(content));
	}
	return (int64_t)(bytes / bytes_per_token);
}
