/*
 * rng.h: the engine's pseudo-random numbers, the same on every machine.
 *
 * splitmix64 to spread a seed (and to hash a counter into a seed);
 * xoshiro256** for streams.  Header-only: these are a few lines each and
 * sit on hot paths (weight generation, sampling).
 */
#ifndef TRAJBENCH_ENG_RNG_H
#define TRAJBENCH_ENG_RNG_H

#include <stdint.h>

/* Advances *x and returns the next splitmix64 value. */
static inline uint64_t eng_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t eng_rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* Seeds a xoshiro256** state from one 64-bit seed. */
static inline void eng_xoshiro_seed(uint64_t s[4], uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		s[i] = eng_splitmix64(&seed);
}

/* The next xoshiro256** value. */
static inline uint64_t eng_xoshiro_next(uint64_t s[4])
{
	uint64_t r = eng_rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = eng_rotl64(s[3], 45);
	return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double eng_unit_double(uint64_t bits)
{
	return (double)(bits >> 11) * (1.0 / 9007199254740992.0);
}

#endif
