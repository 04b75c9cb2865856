/*
 * test-route.c: the routing policies on scripted worker snapshots
 * (thresholds and tie-breaks included), and the router's approximate
 * radix tree (matches, splits, LRU eviction, and a randomized comparison
 * with a brute-force longest common prefix).
 */
#include "engine/route.h"
#include "engine/route_tree.h"
#include "engine/rng.h"
#include "tests/tap.h"

#include <stdint.h>
#include <string.h>

#define W(q, m, tr) { true, (q), 0, (m), (tr) }
#define DOWN(q, m, tr) { false, (q), 0, (m), (tr) }

static int32_t prompt[100];
static const struct eng_route_req req100 = { prompt, 100, 16 };

static int pick(const char *name, const struct eng_route_params *p, const struct eng_route_req *rq,
		const struct eng_route_worker *w, int n)
{
	struct eng_route_policy pol;
	struct eng_error err;
	int k;

	if (eng_route_policy_init(&pol, name, p, &err) != 0)
		return -2;
	k = eng_route_policy_pick(&pol, rq, w, n);
	eng_route_policy_fini(&pol);
	return k;
}

static void test_cache_aware(void)
{
	struct eng_route_params p;
	struct eng_route_req empty = { prompt, 0, 16 };

	eng_route_default_params(&p);
	{
		struct eng_route_worker w[] = { W(0, 60, 500), W(0, 40, 100), W(0, 0, 0) };
		tap_ok(pick("cache_aware", &p, &req100, w, 3) == 0,
		       "cache_aware: a match of 60%% (above 0.5) goes to the best match");
	}
	{
		struct eng_route_worker w[] = { W(0, 50, 500), W(0, 0, 100), W(0, 0, 200) };
		tap_ok(pick("cache_aware", &p, &req100, w, 3) == 1,
		       "cache_aware: exactly 0.5 is not above the threshold: the smallest tree");
	}
	{
		struct eng_route_worker w[] = { W(3, 80, 10), W(1, 80, 900), W(0, 0, 0) };
		tap_ok(pick("cache_aware", &p, &req100, w, 3) == 1,
		       "cache_aware: equal matches: the shorter queue");
	}
	{
		struct eng_route_worker w[] = { W(2, 0, 5), W(2, 80, 9), W(2, 80, 9) };
		tap_ok(pick("cache_aware", &p, &req100, w, 3) == 1,
		       "cache_aware: equal matches and queues: the lower index");
	}
	{
		struct eng_route_worker w[] = { W(5, 0, 300), W(4, 10, 100), W(2, 0, 100) };
		tap_ok(pick("cache_aware", &p, &req100, w, 3) == 2,
		       "cache_aware: equal smallest trees: the shorter queue");
	}
	{
		struct eng_route_worker w[] = { W(0, 0, 0), W(0, 0, 0), W(0, 0, 0) };
		tap_ok(pick("cache_aware", &p, &req100, w, 3) == 0,
		       "cache_aware: all empty and idle: worker 0");
	}
	{
		struct eng_route_worker w[] = { W(40, 90, 100), W(5, 0, 900), W(10, 0, 0) };
		tap_ok(pick("cache_aware", &p, &req100, w, 3) == 1,
		       "cache_aware: queues 40/5/10 are imbalanced (35 > 32): the shortest queue, "
		       "not the 90%% match");
	}
	{
		struct eng_route_worker w[] = { W(37, 90, 100), W(5, 0, 900) };
		tap_ok(pick("cache_aware", &p, &req100, w, 2) == 0,
		       "cache_aware: a difference of exactly 32 is balanced: the match wins");
	}
	{
		struct eng_route_worker w[] = { W(70, 90, 100), W(36, 0, 0) };
		struct eng_route_worker v[] = { W(80, 90, 100), W(36, 0, 0) };
		struct eng_route_params q = p;

		q.balance_rel_threshold = 2.0;
		tap_ok(pick("cache_aware", &q, &req100, w, 2) == 0 &&
		       pick("cache_aware", &q, &req100, v, 2) == 1,
		       "cache_aware: --balance-rel-threshold 2: 70 vs 36 balanced, 80 vs 36 not");
	}
	{
		struct eng_route_worker w[] = { W(33, 90, 100), W(0, 0, 0) };
		tap_ok(pick("cache_aware", &p, &req100, w, 2) == 1,
		       "cache_aware: 33 vs 0 is imbalanced (any max above 1.0001 x 0)");
	}
	{
		struct eng_route_worker w[] = { DOWN(0, 95, 10), W(40, 60, 100), W(20, 0, 0) };
		tap_ok(pick("cache_aware", &p, &req100, w, 3) == 1,
		       "cache_aware: a down worker neither wins nor counts in the load "
		       "(40 vs 20 balanced): the best healthy match");
	}
	{
		struct eng_route_worker w[] = { W(0, 0, 50), W(0, 0, 10) };
		tap_ok(pick("cache_aware", &p, &empty, w, 2) == 1,
		       "cache_aware: an empty prompt: the smallest tree");
	}
	{
		struct eng_route_worker w[] = { W(0, 90, 50), W(0, 20, 10) };
		struct eng_route_params q = p;

		q.cache_threshold = 0.95;
		tap_ok(pick("cache_aware", &q, &req100, w, 2) == 1,
		       "cache_aware: --cache-threshold 0.95: a 90%% match is not enough");
	}
	{
		struct eng_route_worker w[] = { DOWN(0, 90, 50), DOWN(0, 20, 10) };
		tap_ok(pick("cache_aware", &p, &req100, w, 2) == -1,
		       "cache_aware: no healthy worker: -1");
	}
}

static void test_round_robin(void)
{
	struct eng_route_params p;
	struct eng_route_policy pol;
	struct eng_error err;
	struct eng_route_worker w[] = { W(9, 0, 0), W(0, 0, 0), W(0, 0, 0) };
	int got[6];

	eng_route_default_params(&p);
	eng_route_policy_init(&pol, "round_robin", &p, &err);
	for (int i = 0; i < 3; i++)
		got[i] = eng_route_policy_pick(&pol, &req100, w, 3);
	tap_ok(got[0] == 0 && got[1] == 1 && got[2] == 2,
	       "round_robin: 0, 1, 2 whatever the load");
	w[1].healthy = false;
	for (int i = 0; i < 4; i++)
		got[i] = eng_route_policy_pick(&pol, &req100, w, 3);
	tap_ok(got[0] == 2 && got[1] == 0 && got[2] == 2 && got[3] == 0,
	       "round_robin: a down worker is skipped (then 2, 0, 2, 0)");
	w[0].healthy = w[2].healthy = false;
	tap_ok(eng_route_policy_pick(&pol, &req100, w, 3) == -1, "round_robin: none healthy: -1");
	eng_route_policy_fini(&pol);
}

static void test_random(void)
{
	struct eng_route_params p;
	struct eng_route_policy a, b;
	struct eng_error err;
	struct eng_route_worker w[] = { W(0, 0, 0), DOWN(0, 0, 0), W(0, 0, 0), W(0, 0, 0) };
	int hits[4] = { 0 }, same = 1;

	eng_route_default_params(&p);
	p.seed = 7;
	eng_route_policy_init(&a, "random", &p, &err);
	eng_route_policy_init(&b, "random", &p, &err);
	for (int i = 0; i < 3000; i++) {
		int k = eng_route_policy_pick(&a, &req100, w, 4);

		same &= k == eng_route_policy_pick(&b, &req100, w, 4);
		if (k >= 0)
			hits[k]++;
	}
	tap_ok(same, "random: the same seed, the same choices");
	tap_ok(hits[1] == 0, "random: a down worker is never picked");
	tap_ok(hits[0] > 900 && hits[2] > 900 && hits[3] > 900,
	       "random: about uniform over the healthy (%d %d %d of 3000)", hits[0], hits[2],
	       hits[3]);
	eng_route_policy_fini(&a);
	eng_route_policy_fini(&b);
}

static void test_shortest_queue(void)
{
	struct eng_route_params p;

	eng_route_default_params(&p);
	{
		struct eng_route_worker w[] = { { true, 3, 10, 0, 0 }, { true, 1, 500, 0, 0 },
						{ true, 1, 100, 0, 0 } };
		tap_ok(pick("shortest_queue", &p, &req100, w, 3) == 2,
		       "shortest_queue: fewest requests; equal queues: fewer tokens in flight");
	}
	{
		struct eng_route_worker w[] = { { true, 2, 100, 0, 0 }, { true, 2, 100, 0, 0 } };
		tap_ok(pick("shortest_queue", &p, &req100, w, 2) == 0,
		       "shortest_queue: equal queues and tokens: the lower index");
	}
	{
		struct eng_route_worker w[] = { { false, 0, 0, 0, 0 }, { true, 5, 100, 0, 0 } };
		tap_ok(pick("shortest_queue", &p, &req100, w, 2) == 1,
		       "shortest_queue: a down worker with an empty queue is not picked");
	}
}

static void test_power_of_two(void)
{
	struct eng_route_params p;
	struct eng_route_policy pol;
	struct eng_error err;
	struct eng_route_worker w[] = { W(100, 0, 0), W(0, 0, 0), W(0, 0, 0) };
	struct eng_route_worker two[] = { W(4, 0, 0), W(3, 0, 0) };
	struct eng_route_worker one[] = { DOWN(0, 0, 0), W(50, 0, 0) };
	int hits[3] = { 0 }, low = 1;

	eng_route_default_params(&p);
	p.seed = 3;
	eng_route_policy_init(&pol, "power_of_two", &p, &err);
	for (int i = 0; i < 600; i++)
		hits[eng_route_policy_pick(&pol, &req100, w, 3)]++;
	tap_ok(hits[0] == 0 && hits[1] > 150 && hits[2] > 150,
	       "power_of_two: of two distinct draws one is idle, so the loaded worker never wins "
	       "(%d %d %d)", hits[0], hits[1], hits[2]);
	for (int i = 0; i < 50; i++)
		low &= eng_route_policy_pick(&pol, &req100, two, 2) == 1;
	tap_ok(low, "power_of_two: with two workers, always the less loaded");
	tap_ok(eng_route_policy_pick(&pol, &req100, one, 2) == 1,
	       "power_of_two: one healthy worker: it");
	eng_route_policy_fini(&pol);
}

static void test_registry(void)
{
	struct eng_route_params p;
	struct eng_route_policy pol;
	struct eng_error err;
	const char *names[] = { "cache_aware", "round_robin", "random", "shortest_queue",
				"power_of_two" };
	int ok = 1;

	for (size_t i = 0; i < 5; i++)
		ok &= eng_route_policy_find(names[i]) &&
		      !strcmp(eng_route_policy_find(names[i])->name, names[i]);
	tap_ok(ok && !eng_route_policy_find("least_latency"), "every policy found by its name");
	tap_ok(eng_route_policy_find("cache_aware")->needs_tree &&
	       !eng_route_policy_find("round_robin")->needs_tree,
	       "only cache_aware asks for the trees");
	eng_route_default_params(&p);
	tap_ok(p.cache_threshold == 0.5 && p.balance_abs_threshold == 32 &&
	       p.balance_rel_threshold == 1.0001 && p.eviction_interval_s == 60 &&
	       p.max_tree_size == 1 << 24, "SGLang's defaults");
	tap_ok(eng_route_policy_init(&pol, "nope", &p, &err) == ENG_E_INVALID &&
	       strstr(err.msg, "power_of_two"), "an unknown policy: the error names them all");
	p.cache_threshold = 1.5;
	tap_ok(eng_route_policy_init(&pol, "cache_aware", &p, &err) == ENG_E_INVALID,
	       "a cache threshold above 1 is refused");
}

static void test_tree_cases(void)
{
	struct eng_route_tree *t = eng_route_tree_new();
	int32_t a[] = { 1, 2, 3, 4 }, b[] = { 1, 2, 5, 6 }, c[] = { 9, 9, 9 };
	int32_t q1[] = { 1, 2, 3, 9 }, q2[] = { 1, 2, 3, 4, 5 }, q3[] = { 7 };

	eng_route_tree_insert(t, a, 4);
	tap_ok(eng_route_tree_match(t, q1, 4) == 3 && eng_route_tree_match(t, q2, 5) == 4 &&
	       eng_route_tree_match(t, q3, 1) == 0, "tree: matches stop where the prefix parts");
	eng_route_tree_insert(t, b, 4);
	tap_ok(eng_route_tree_size(t) == 6 && eng_route_tree_nodes(t) == 4 &&
	       eng_route_tree_match(t, b, 4) == 4 && eng_route_tree_match(t, a, 4) == 4,
	       "tree: a split keeps both prompts (6 tokens, 4 nodes)");
	eng_route_tree_insert(t, a, 2);
	tap_ok(eng_route_tree_size(t) == 6, "tree: a prefix already there adds nothing");
	eng_route_tree_insert(t, c, 3);
	eng_route_tree_insert(t, a, 4); /* a is now the most recent */
	tap_ok(eng_route_tree_evict(t, 6) == 5 && eng_route_tree_match(t, a, 4) == 4 &&
	       eng_route_tree_match(t, b, 4) == 2 && eng_route_tree_match(t, c, 3) == 0,
	       "tree: eviction to 6 tokens takes the least recent leaves first (b's tail, then c)");
	tap_ok(eng_route_tree_evict(t, 0) == 4 && eng_route_tree_size(t) == 0 &&
	       eng_route_tree_nodes(t) == 1, "tree: eviction to 0 empties it");
	eng_route_tree_insert(t, a, 4);
	eng_route_tree_clear(t);
	tap_ok(eng_route_tree_match(t, a, 4) == 0 && eng_route_tree_size(t) == 0,
	       "tree: clear empties it");
	eng_route_tree_free(t);
}

/* Random sequences over a 3-token alphabet: the tree's match is the
 * longest common prefix with any inserted sequence. */
static void test_tree_random(void)
{
	enum { N = 300, L = 24 };
	static int32_t seqs[N][L];
	static int32_t lens[N];
	struct eng_route_tree *t = eng_route_tree_new();
	uint64_t x = 11;
	int bad = 0;
	int64_t total = 0;

	for (int i = 0; i < N; i++) {
		int32_t q[L], nq = 1 + (int32_t)(eng_splitmix64(&x) % L), best = 0;

		for (int32_t k = 0; k < nq; k++)
			q[k] = (int32_t)(eng_splitmix64(&x) % 3);
		for (int j = 0; j < i; j++) {
			int32_t l = 0;

			while (l < nq && l < lens[j] && q[l] == seqs[j][l])
				l++;
			best = l > best ? l : best;
		}
		bad += eng_route_tree_match(t, q, nq) != best;
		lens[i] = nq;
		memcpy(seqs[i], q, sizeof(q));
		eng_route_tree_insert(t, q, nq);
	}
	tap_ok(bad == 0, "tree: %d random matches equal the brute-force longest prefix", N);
	total = eng_route_tree_size(t);
	eng_route_tree_evict(t, total / 2);
	tap_ok(eng_route_tree_size(t) <= total / 2, "tree: eviction to half (%lld of %lld tokens)",
	       (long long)eng_route_tree_size(t), (long long)total);
	eng_route_tree_free(t);
}

int main(void)
{
	for (int i = 0; i < 100; i++)
		prompt[i] = i;
	test_cache_aware();
	test_round_robin();
	test_random();
	test_shortest_queue();
	test_power_of_two();
	test_registry();
	test_tree_cases();
	test_tree_random();
	return tap_done();
}
