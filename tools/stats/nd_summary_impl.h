/*
 * nd_summary_impl.h: the state nd_summary.c accumulates and
 * nd_summary_record.c turns into records.  Private to those two files.
 */
#ifndef TRAJBENCH_ND_SUMMARY_IMPL_H
#define TRAJBENCH_ND_SUMMARY_IMPL_H

#include "tools/stats/nd_summary.h"
#include "tools/common/nd_strmap.h"
#include "tools/common/nd_vec.h"



/*
 * Names (run, conversation_id, worker, mode, backend) are kept in their
 * JSON form, quotes included ("\"bs1\""): a C string with neither NUL nor
 * control characters, so that a name holding U+0000 stays whole, keys
 * joined by \x1f cannot collide, and the records give every name back
 * exactly (nd_summary_name_json).
 */

/* One conversation inside a group. */
struct conv_acc {
	long n_ok, n_failed;
	double env_req;    /* sum of the requests' env_exec_time (null = 0) */
	double llm_req;    /* sum of the successful requests' latency */
	bool has_result;   /* a conversation_result was seen: it decides */
	bool result_ok;
	double result_env, result_llm;
};

/* One turn index inside a group (--per-turn). */
struct turn_acc {
	long turn;
	struct nd_dvec ttft;  /* (count) seconds, successful requests */
	long long prompt_sum, cached_sum;
	long long cache_prompt_sum; /* prompt tokens of requests with a cached count */
	long n_cache_known;
};

struct group {
	char *key;
	char *run;              /* JSON form; NULL when a none-group spans
				 * several runs */
	bool run_mixed;
	char *conversation_id;  /* JSON form; set with --group-by conversation */
	long turn;              /* set with --group-by turn */
	char *worker;           /* JSON form; set with --group-by worker; NULL:
				 * none named */
	bool closed;            /* its run record was seen */
	long completed, failed;
	long recorded, mismatched; /* requests with a recorded prompt length, and
				    * those whose prompt_len differs from it */
	long long input_tokens, output_tokens, cached_tokens;
	long long cache_input_tokens; /* input tokens of requests with a cached count */
	long n_cache_known;           /* successful requests with a cached count */
	double t_first, t_last; /* min start_time, max start_time + latency */
	struct nd_dvec e2e, ttft, tpot, itl;
	/* Per successful request, in the order of e2e and ttft (for SGLang's
	 * peaks): its start_time and its number of ITL values in itl. */
	struct nd_dvec start, n_itl;
	struct nd_strmap convs; /* run \x1f conversation_id -> conv_acc */
	struct conv_acc **conv_list; /* (n_conv) in order of appearance */
	size_t n_conv, cap_conv;
	struct turn_acc *turns; /* (n_turns) in order of appearance */
	size_t n_turns, cap_turns;
	struct group *next;
};

struct run_info {
	char *mode;             /* JSON form; NULL when absent */
	long long batch_size;
	bool has_batch_size;
	double request_rate;    /* requests/s; NAN when absent or null */
	char *backend;          /* JSON form; NULL when absent */
	json_t *engine_stats;   /* the run record's (a reference), NULL when absent */
	struct run_info *next;  /* list for freeing */
};

struct nd_summary {
	struct nd_summary_params p;
	struct nd_strmap groups; /* key -> group */
	struct group *head;      /* order of first appearance */
	struct group **tail;
	struct nd_strmap runs;   /* run -> run_info */
	struct run_info *run_list;
	bool wrote_any;
};

/* The JSON string of a name in JSON form; null for NULL; NULL when out of
 * memory. */
json_t *nd_summary_name_json(const char *name);

/* The group's "summary" record; NULL when out of memory.  Sorts the
 * group's samples. */
json_t *nd_summary_record(const struct nd_summary *s, struct group *g);

/* A JSON array of the group's "turn_summary" records, ordered by turn;
 * NULL when out of memory.  Sorts the group's turns and their samples. */
json_t *nd_summary_turn_records(const struct nd_summary *s, struct group *g);

#endif
