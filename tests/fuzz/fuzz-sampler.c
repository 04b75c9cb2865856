/*
 * fuzz-sampler.c: next-token sampling (engine/sampler.c) over raw logits
 * and parameters, NaN, infinities and extreme temperatures included.  The
 * input is the parameters (temperature, top_k, top_p as raw 4-byte values,
 * an 8-byte seed), a vocabulary size byte and the logits as raw floats.
 * Parameters are refused at creation, or every draw is a token of the
 * vocabulary; argmax too.
 */
#include "tests/fuzz/fuzz.h"
#include "engine/sampler.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct eng_sampler_params p = eng_sampler_default_params();
	struct eng_sampler *s = NULL;
	struct eng_error err;
	float *logits;
	int vocab, top_k;
	size_t given;

	if (size < 21)
		return 0;
	memcpy(&p.temperature, data, 4);
	memcpy(&top_k, data + 4, 4);
	memcpy(&p.top_p, data + 8, 4);
	memcpy(&p.seed, data + 12, 8);
	p.top_k = top_k;
	vocab = 1 + data[20] % 300;
	data += 21;
	size -= 21;
	logits = calloc((size_t)vocab, sizeof(float));
	FUZZ_CHECK(logits != NULL);
	given = size / 4 < (size_t)vocab ? size / 4 : (size_t)vocab;
	memcpy(logits, data, given * 4);
	FUZZ_CHECK((unsigned)eng_argmax(logits, vocab) < (unsigned)vocab);
	if (eng_sampler_create(&p, vocab, &s, &err) == 0) {
		for (int i = 0; i < 3; i++) {
			int t = eng_sampler_sample(s, logits);

			FUZZ_CHECK(t >= 0 && t < vocab);
		}
		eng_sampler_free(s);
	}
	free(logits);
	return 0;
}
