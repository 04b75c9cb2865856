/*
 * test-router.c: the router executor over scripted workers.
 *
 * Each fake worker is a thread serving the worker protocol's "requests"
 * and "status" commands on a Unix socket: it answers a request after a
 * delay with its forced reply (or tokens made from the prompt), reports as
 * cached the longest prefix it saw before, and can be told to die (close
 * everything) or hang (answer nothing, keep its sockets).  The router is
 * driven directly (submit, step) with callbacks that check every request
 * is answered exactly once.
 */
#include "engine/router.h"
#include "engine/clock.h"
#include "tests/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { FAKE_OK, FAKE_HANG, FAKE_DEAD };

#define MAX_CONN 32
#define MAX_PENDING 256
#define MAX_SEEN 256

struct pending {
	unsigned long long id;
	double due;
	int32_t n_out, prompt_len, cached;
	int32_t out[64];
	int conn;
};

struct fake {
	char path[108];
	int lfd;
	pthread_t th;
	atomic_int mode;
	atomic_int n_requests, n_flushes, n_status;
	_Atomic double delay_s;
	atomic_bool error_replies;   /* answer every request with an error */
	int conn[MAX_CONN];
	char *buf[MAX_CONN];
	size_t len[MAX_CONN];
	struct pending pend[MAX_PENDING];
	int n_pend;
	int32_t *seen[MAX_SEEN];     /* prompts seen, for cached_tokens */
	int32_t seen_len[MAX_SEEN];
	int n_seen;
};

static void say(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static int32_t lcp_seen(struct fake *f, const int32_t *p, int32_t n)
{
	int32_t best = 0;

	for (int i = 0; i < f->n_seen; i++) {
		int32_t l = 0;

		while (l < n && l < f->seen_len[i] && f->seen[i][l] == p[l])
			l++;
		best = l > best ? l : best;
	}
	if (f->n_seen < MAX_SEEN && (f->seen[f->n_seen] = malloc(sizeof(int32_t) * (size_t)n))) {
		memcpy(f->seen[f->n_seen], p, sizeof(int32_t) * (size_t)n);
		f->seen_len[f->n_seen++] = n;
	}
	return best;
}

/* Minimal field readers: the router writes these lines itself. */
static long long num_after(const char *line, const char *key)
{
	const char *p = strstr(line, key);

	return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static int32_t ids_after(const char *line, const char *key, int32_t *out, int32_t cap)
{
	const char *p = strstr(line, key);
	int32_t n = 0;

	if (!p)
		return -1;
	p += strlen(key);
	while (*p && *p != ']') {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p)
			break;
		if (n < cap)
			out[n] = (int32_t)v;
		n++;
		p = *end == ',' ? end + 1 : end;
	}
	return n;
}

static void take_line(struct fake *f, int c, const char *line)
{
	if (strstr(line, "\"command\":\"status\"")) {
		atomic_fetch_add(&f->n_status, 1);
		say(f->conn[c], "{\"type\":\"status\",\"running_requests\":0}\n");
		close(f->conn[c]);
		f->conn[c] = -1;
	} else if (strstr(line, "\"type\":\"flush_cache\"")) {
		atomic_fetch_add(&f->n_flushes, 1);
		for (int i = 0; i < f->n_seen; i++)
			free(f->seen[i]);
		f->n_seen = 0;
	} else if (strstr(line, "\"type\":\"request\"") && f->n_pend < MAX_PENDING) {
		struct pending *q = &f->pend[f->n_pend++];
		int32_t prompt[4096], forced[64], nf;

		atomic_fetch_add(&f->n_requests, 1);
		q->id = (unsigned long long)num_after(line, "\"id\":");
		q->conn = c;
		q->due = eng_mono_s() + f->delay_s;
		q->prompt_len = ids_after(line, "\"prompt_ids\":[", prompt, 4096);
		q->cached = lcp_seen(f, prompt, q->prompt_len < 4096 ? q->prompt_len : 4096);
		q->n_out = (int32_t)num_after(line, "\"max_new_tokens\":");
		nf = ids_after(line, "\"forced_output_ids\":[", forced, 64);
		for (int32_t i = 0; i < q->n_out && i < 64; i++)
			q->out[i] = nf > i ? forced[i] : (q->prompt_len + i) % 50;
	}
}

static void answer_due(struct fake *f, double now)
{
	for (int i = 0; i < f->n_pend;) {
		struct pending *q = &f->pend[i];
		char line[1024];
		int n;

		if (q->due > now) {
			i++;
			continue;
		}
		if (f->conn[q->conn] >= 0 && f->error_replies) {
			snprintf(line, sizeof(line), "{\"type\":\"result\",\"id\":%llu,"
				 "\"finish_reason\":\"error\",\"error\":\"scripted failure\"}\n", q->id);
			say(f->conn[q->conn], line);
		} else if (f->conn[q->conn] >= 0) {
			for (int32_t k = 0; k < q->n_out; k++) {
				snprintf(line, sizeof(line), "{\"type\":\"token\",\"id\":%llu,"
					 "\"index\":%d,\"token\":%d}\n", q->id, (int)k, (int)q->out[k]);
				say(f->conn[q->conn], line);
			}
			n = snprintf(line, sizeof(line), "{\"type\":\"result\",\"id\":%llu,"
				     "\"finish_reason\":\"length\",\"prompt_len\":%d,"
				     "\"cached_tokens\":%d,\"output_ids\":[", q->id, (int)q->prompt_len,
				     (int)q->cached);
			for (int32_t k = 0; k < q->n_out; k++)
				n += snprintf(line + n, sizeof(line) - (size_t)n, k ? ",%d" : "%d",
					      (int)q->out[k]);
			snprintf(line + n, sizeof(line) - (size_t)n, "],\"queue_time\":0.001}\n");
			say(f->conn[q->conn], line);
		}
		*q = f->pend[--f->n_pend];
	}
}

static void read_conn(struct fake *f, int c)
{
	char chunk[65536], *nl;
	ssize_t n = read(f->conn[c], chunk, sizeof(chunk));

	if (n <= 0) {
		close(f->conn[c]);
		f->conn[c] = -1;
		return;
	}
	f->buf[c] = realloc(f->buf[c], f->len[c] + (size_t)n + 1);
	memcpy(f->buf[c] + f->len[c], chunk, (size_t)n);
	f->len[c] += (size_t)n;
	f->buf[c][f->len[c]] = '\0';
	while (f->conn[c] >= 0 && (nl = memchr(f->buf[c], '\n', f->len[c]))) {
		*nl = '\0';
		take_line(f, c, f->buf[c]);
		f->len[c] -= (size_t)(nl + 1 - f->buf[c]);
		memmove(f->buf[c], nl + 1, f->len[c] + 1);
	}
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	while (atomic_load(&f->mode) != FAKE_DEAD) {
		struct pollfd fds[MAX_CONN + 1];
		int who[MAX_CONN + 1], n = 1;
		bool hang = atomic_load(&f->mode) == FAKE_HANG;

		fds[0] = (struct pollfd){ f->lfd, POLLIN, 0 };
		for (int c = 0; c < MAX_CONN && !hang; c++)
			if (f->conn[c] >= 0) {
				fds[n] = (struct pollfd){ f->conn[c], POLLIN, 0 };
				who[n++] = c;
			}
		poll(fds, (nfds_t)n, 2);
		if (fds[0].revents & POLLIN) {
			int fd = accept(f->lfd, NULL, NULL);

			for (int c = 0; fd >= 0 && c < MAX_CONN; c++)
				if (f->conn[c] < 0) {
					f->conn[c] = fd;
					f->len[c] = 0;
					fd = -1;
				}
			if (fd >= 0)
				close(fd);
		}
		for (int i = 1; i < n; i++)
			if (fds[i].revents)
				read_conn(f, who[i]);
		if (!hang)
			answer_due(f, eng_mono_s());
	}
	for (int c = 0; c < MAX_CONN; c++)
		if (f->conn[c] >= 0)
			close(f->conn[c]);
	close(f->lfd);
	unlink(f->path);
	return NULL;
}

static struct fake *fake_start(const char *dir, int k, double delay_s)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	snprintf(f->path, sizeof(f->path), "%s/w%d.sock", dir, k);
	strcpy(addr.sun_path, f->path);
	unlink(f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(f->lfd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(f->lfd, 64) != 0)
		return NULL;
	f->delay_s = delay_s;
	for (int c = 0; c < MAX_CONN; c++)
		f->conn[c] = -1;
	pthread_create(&f->th, NULL, fake_main, f);
	return f;
}

/* Dies: the thread closes everything and ends. */
static void fake_kill(struct fake *f)
{
	if (!f)
		return;
	atomic_store(&f->mode, FAKE_DEAD);
	pthread_join(f->th, NULL);
	for (int c = 0; c < MAX_CONN; c++)
		free(f->buf[c]);
	for (int i = 0; i < f->n_seen; i++)
		free(f->seen[i]);
	free(f);
}

/* ---------------------------------------------------------------- the client side */

#define MAX_REQ 512

struct done {
	int finished;                /* on_finish calls */
	int tokens;
	enum eng_finish finish;
	int worker, retried;
	int32_t cached, out[16], n_out;
};

static struct done done[MAX_REQ];

static void on_token(void *user, int32_t token, int32_t index)
{
	(void)token;
	(void)index;
	done[(intptr_t)user].tokens++;
}

static void on_finish(void *user, const struct eng_request_result *res)
{
	struct done *d = &done[(intptr_t)user];

	d->finished++;
	d->finish = res->finish;
	d->worker = res->route ? res->route->worker : -2;
	d->retried = res->route ? res->route->retried : -1;
	d->cached = res->cached_tokens;
	d->n_out = res->n_output < 16 ? res->n_output : 16;
	if (d->n_out > 0)
		memcpy(d->out, res->output, sizeof(int32_t) * (size_t)d->n_out);
}

static const struct eng_sched_callbacks cbs = { on_token, on_finish };

static int32_t prompts[MAX_REQ][64];
static int32_t forced[4] = { 5, 6, 7, 8 };

static int submit(struct eng_router *r, int i, int32_t len, bool with_forced)
{
	struct eng_request_params p = { .prompt = prompts[i], .prompt_len = len,
					.max_new_tokens = 4, .ignore_eos = true };
	struct eng_error err;

	p.forced_output = with_forced ? forced : NULL;
	p.user = (void *)(intptr_t)i;
	memset(&done[i], 0, sizeof(done[i]));
	done[i].worker = -3;
	return eng_router_submit(r, &p, NULL, 0, &err);
}

/* Steps until requests from, from + stride, ... (n of them) are all
 * finished or t seconds pass. */
static bool run_until_every(struct eng_router *r, int from, int stride, int n, double t)
{
	double end = eng_mono_s() + t;

	for (;;) {
		int left = 0;

		for (int i = 0; i < n; i++)
			left += done[from + i * stride].finished == 0;
		if (left == 0)
			return true;
		if (eng_mono_s() > end)
			return false;
		eng_router_step(r, 0.005);
	}
}

static bool run_until_done(struct eng_router *r, int n, double t)
{
	return run_until_every(r, 0, 1, n, t);
}

static void step_for(struct eng_router *r, double t)
{
	double end = eng_mono_s() + t;

	while (eng_mono_s() < end)
		eng_router_step(r, 0.005);
}

static bool each_once(int n)
{
	for (int i = 0; i < n; i++)
		if (done[i].finished != 1)
			return false;
	return true;
}

static const char *dir;
static char path_buf[3][108];
static const char *paths[3] = { path_buf[0], path_buf[1], path_buf[2] };
static struct fake *fk[3];

static struct eng_router *router(const char *policy, struct eng_router_params *p)
{
	struct eng_router *r = NULL;
	struct eng_error err;

	p->workers = paths;
	p->n_workers = 3;
	p->policy = policy;
	if (eng_router_create(p, NULL, &cbs, &r, &err) != 0)
		tap_diag("router: %s", err.msg);
	return r;
}

static void fast_health(struct eng_router_params *p)
{
	eng_router_default_params(p);
	p->health_check_interval_s = 0.1;
	p->health_check_timeout_s = 0.3;
	p->health_failure_threshold = 2;
	p->health_success_threshold = 2;
	p->request_timeout_s = 1.0;
	p->worker_startup_timeout_s = 3;
}

static void test_round_robin(void)
{
	struct eng_router_params p;
	struct eng_router *r;
	struct eng_router_worker_stats st;
	int per[3] = { 0 }, forced_ok = 1;

	fast_health(&p);
	r = router("round_robin", &p);
	if (!tap_ok(r != NULL, "a router over three workers opens"))
		return;
	for (int i = 0; i < 30; i++)
		submit(r, i, 10, true);
	tap_ok(run_until_done(r, 30, 5) && each_once(30),
	       "round_robin: 30 requests, each answered exactly once");
	for (int i = 0; i < 30; i++) {
		if (done[i].worker >= 0 && done[i].worker < 3)
			per[done[i].worker]++;
		forced_ok &= done[i].n_out == 4 && !memcmp(done[i].out, forced, sizeof(forced)) &&
			     done[i].tokens == 4;
	}
	tap_ok(per[0] == 10 && per[1] == 10 && per[2] == 10,
	       "round_robin: 10 per worker (%d %d %d)", per[0], per[1], per[2]);
	tap_ok(forced_ok, "the forced replies come back whole, token by token");
	eng_router_worker_stats(r, 0, &st);
	tap_ok(st.sent == 10 && st.answered == 10 && st.failed_over == 0,
	       "worker stats: 10 sent, 10 answered, none failed over");
	eng_router_flush_cache(r);
	step_for(r, 0.05);
	tap_ok(atomic_load(&fk[0]->n_flushes) == 1 && atomic_load(&fk[2]->n_flushes) == 1,
	       "a cache flush reaches every worker");
	eng_router_free(r);
}

/* Ten conversations of three turns, each turn's prompt extending the
 * last; the turns go one at a time per conversation. */
static void test_cache_aware(void)
{
	struct eng_router_params p;
	struct eng_router *r;
	int sticky = 1, used[3] = { 0 }, hits = 0;

	fast_health(&p);
	r = router("cache_aware", &p);
	if (!r)
		return;
	for (int c = 0; c < 10; c++)
		for (int k = 0; k < 64; k++)
			prompts[c * 3][k] = prompts[c * 3 + 1][k] = prompts[c * 3 + 2][k] =
				1000 * (c + 1) + k;
	for (int t = 0; t < 3; t++) {
		for (int c = 0; c < 10; c++)
			submit(r, c * 3 + t, 30 + 15 * t, false);
		run_until_every(r, t, 3, 10, 5);
	}
	for (int c = 0; c < 10; c++) {
		sticky &= done[c * 3].worker == done[c * 3 + 1].worker &&
			  done[c * 3].worker == done[c * 3 + 2].worker;
		used[done[c * 3].worker < 0 ? 0 : done[c * 3].worker]++;
		hits += done[c * 3 + 1].cached == 30 && done[c * 3 + 2].cached == 45;
	}
	tap_ok(each_once(30) && sticky, "cache_aware: every turn of a conversation on one worker");
	tap_ok(used[0] > 0 && used[1] > 0 && used[2] > 0,
	       "cache_aware: new conversations go to the smallest trees (%d %d %d)", used[0],
	       used[1], used[2]);
	tap_ok(hits == 10, "cache_aware: every later turn finds its prefix cached");
	eng_router_free(r);
}

static void test_worker_killed(void)
{
	struct eng_router_params p;
	struct eng_router *r;
	struct eng_router_worker_stats st;
	int retried = 0, on_dead = 0;

	fast_health(&p);
	for (int k = 0; k < 3; k++)
		fk[k]->delay_s = 0.2;
	r = router("round_robin", &p);
	if (!r)
		return;
	for (int i = 0; i < 30; i++)
		submit(r, i, 10, true);
	step_for(r, 0.05);
	fake_kill(fk[1]);
	fk[1] = NULL;
	tap_ok(run_until_done(r, 30, 5) && each_once(30),
	       "a worker killed with requests in flight: every request answered exactly once");
	for (int i = 0; i < 30; i++) {
		retried += done[i].retried > 0;
		on_dead += done[i].worker == 1;
	}
	eng_router_worker_stats(r, 1, &st);
	tap_ok(retried == 10 && on_dead == 0 && st.failed_over == 10 && st.marked_down == 1,
	       "its 10 requests were re-sent elsewhere and say retried (%d retried, %lld failed "
	       "over)", retried, (long long)st.failed_over);
	fk[1] = fake_start(dir, 1, 0.0);
	step_for(r, 0.5);
	eng_router_worker_stats(r, 1, &st);
	tap_ok(st.rejoined == 1, "the worker back on its socket rejoins");
	for (int i = 0; i < 6; i++)
		submit(r, i, 10, true);
	run_until_done(r, 6, 5);
	on_dead = 0;
	for (int i = 0; i < 6; i++)
		on_dead += done[i].worker == 1;
	tap_ok(each_once(6) && on_dead == 2, "and takes its turn again (%d of 6)", on_dead);
	for (int k = 0; k < 3; k++)
		fk[k]->delay_s = 0;
	eng_router_free(r);
}

static void test_worker_hangs(void)
{
	struct eng_router_params p;
	struct eng_router *r;
	struct eng_router_worker_stats st;
	int on_hung = 0;
	double t0;

	fast_health(&p);
	r = router("round_robin", &p);
	if (!r)
		return;
	atomic_store(&fk[2]->mode, FAKE_HANG);
	t0 = eng_mono_s();
	for (int i = 0; i < 12; i++)
		submit(r, i, 10, true);
	tap_ok(run_until_done(r, 12, 5) && each_once(12),
	       "a worker that answers nothing: every request still answered exactly once");
	for (int i = 0; i < 12; i++)
		on_hung += done[i].worker == 2;
	eng_router_worker_stats(r, 2, &st);
	tap_ok(on_hung == 0 && st.timeouts > 0 && st.marked_down == 1,
	       "its requests and probes timed out (%lld) and it was marked down in %.1f s",
	       (long long)st.timeouts, eng_mono_s() - t0);
	atomic_store(&fk[2]->mode, FAKE_OK);
	step_for(r, 0.6);
	eng_router_worker_stats(r, 2, &st);
	tap_ok(st.rejoined == 1, "answering again, it rejoins");
	eng_router_free(r);
}

static void test_errors_and_cancel(void)
{
	struct eng_router_params p;
	struct eng_router *r;
	struct eng_router_worker_stats st;
	int id;

	fast_health(&p);
	r = router("round_robin", &p);
	if (!r)
		return;
	fk[0]->error_replies = true;
	submit(r, 0, 10, true);
	run_until_done(r, 1, 2);
	eng_router_worker_stats(r, 0, &st);
	tap_ok(each_once(1) && done[0].finish == ENG_FINISH_ERROR && done[0].retried == 0 &&
	       st.failed_over == 0, "a worker's error answer is passed on, not retried");
	fk[0]->error_replies = false;
	fk[1]->delay_s = 0.3;
	submit(r, 0, 10, true);
	id = submit(r, 1, 10, true);
	eng_router_cancel(r, id);
	tap_ok(done[1].finished == 0, "cancel reports nothing at once");
	run_until_done(r, 2, 2);
	tap_ok(each_once(2) && done[1].finish == ENG_FINISH_ABORT,
	       "a cancelled request ends once, aborted");
	fk[1]->delay_s = 0;
	eng_router_free(r);
}

static void test_no_worker(void)
{
	struct eng_router_params p;
	struct eng_router *r = NULL;
	struct eng_error err;
	const char *none[] = { "/nonexistent/trajbench.sock" };
	const char *twice[] = { paths[0], paths[0] };

	eng_router_default_params(&p);
	p.worker_startup_timeout_s = 0.3;
	p.workers = none;
	p.n_workers = 1;
	tap_ok(eng_router_create(&p, NULL, &cbs, &r, &err) == ENG_E_IO && !r &&
	       strstr(err.msg, "no worker answers"), "no worker answers: the open fails");
	p.workers = twice;
	p.n_workers = 2;
	tap_ok(eng_router_create(&p, NULL, &cbs, &r, &err) == ENG_E_INVALID,
	       "a worker given twice is refused");
	p.workers = paths;
	p.n_workers = 3;
	p.policy = "fastest";
	tap_ok(eng_router_create(&p, NULL, &cbs, &r, &err) == ENG_E_INVALID, "an unknown policy");
}

int main(void)
{
	char tmpl[] = "/tmp/test-router-XXXXXX";

	dir = mkdtemp(tmpl);
	if (!dir)
		return tap_skip_all("no temporary directory");
	for (int k = 0; k < 3; k++) {
		fk[k] = fake_start(dir, k, 0.0);
		snprintf(path_buf[k], sizeof(path_buf[k]), "%s", fk[k] ? fk[k]->path : "");
	}
	for (int i = 0; i < MAX_REQ; i++)
		for (int k = 0; k < 64; k++)
			prompts[i][k] = i * 100 + k;
	test_round_robin();
	test_cache_aware();
	test_worker_killed();
	test_worker_hangs();
	test_errors_and_cancel();
	test_no_worker();
	for (int k = 0; k < 3; k++)
		fake_kill(fk[k]);
	rmdir(dir);
	return tap_done();
}
