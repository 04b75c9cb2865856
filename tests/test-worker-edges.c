/*
 * test-worker-edges.c: the worker at its limits.
 *
 *   - back-pressure: a client that sends a lot and never reads does not
 *     grow the worker (its resident set, from /proc) past a generous bound;
 *   - a line over 256 MiB ends the run with an error record, which the
 *     client reports, instead of a silent hang-up;
 *   - more than 1023 connections: the oldest is still served, and one past
 *     --max-connections gets an error record;
 *   - a connection idle past --idle-timeout gets an error record and is
 *     closed, while a run that keeps going is not;
 *   - the peer-uid rule, with made-up uids; and, when the test runs as
 *     root, a worker of another user is refused by the client, and a
 *     client of another user by the worker.
 * These are memory bounds and protocol outcomes; the timeouts only keep a
 * broken worker from hanging the test.
 */
#include "engine/engine.h"
#include "engine/sock.h"
#include "tests/tap.h"
#include "tests/test-worker-helper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FLOOD_LINE (64 << 10)
#define FLOOD_MAX ((size_t)400 << 20)
#define N_CONN 1100

/* Sends the hello of a run of batch 1 that waits out the recorded
 * environment times: its first conversation keeps the run busy, so the
 * rest of its input waits. */
static int send_hello(int fd)
{
	json_t *h = tw_hello("run", 1);
	char *s;

	json_object_set_new(json_object_get(h, "params"), "env_time_scale", json_real(1.0));
	s = json_dumps(h, JSON_COMPACT);
	int rc = -1;

	if (s && tw_send(fd, s, strlen(s)) == 0)
		rc = tw_send(fd, "\n", 1);

	free(s);
	json_decref(h);
	return rc;
}

/* One conversation line of FLOOD_LINE bytes: a short conversation whose
 * first turn is followed by 1000 s of environment time, and a field the
 * engine ignores. */
static char *flood_line(void)
{
	char *line = malloc(FLOOD_LINE), head[1024];
	int n = snprintf(head, sizeof(head), "%s",
			 "{\"type\":\"conversation\",\"id\":\"f\",\"messages\":["
			 "{\"role\":\"user\",\"content\":\"Task.\"},"
			 "{\"role\":\"assistant\",\"content\":\"Looking.\",\"env_exec_time\":1000},"
			 "{\"role\":\"user\",\"content\":\"Found it.\"},"
			 "{\"role\":\"assistant\",\"content\":\"Fixed.\"}]}\n");

	/* {"pad":"xxx...", ...the conversation's fields...}\n */
	memcpy(line, "{\"pad\":\"", 8);
	memset(line + 8, 'x', FLOOD_LINE - (size_t)n - 9);
	line[FLOOD_LINE - n - 1] = '"';
	line[FLOOD_LINE - n] = ',';
	memcpy(line + FLOOD_LINE - n + 1, head + 1, (size_t)n - 1);
	return line;
}

/* Sends flood lines without blocking until FLOOD_MAX bytes went out or the
 * worker took nothing for 2 s; the bytes sent. */
static size_t flood(int fd)
{
	char *line = flood_line();
	size_t sent = 0, off = 0;

	while (sent < FLOOD_MAX) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		ssize_t w;

		if (poll(&p, 1, 2000) <= 0)
			break;
		w = send(fd, line + off, FLOOD_LINE - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (w <= 0)
			break;
		sent += (size_t)w;
		off = (off + (size_t)w) % FLOOD_LINE;
	}
	free(line);
	return sent;
}

static void check_backpressure(pid_t worker)
{
	int fd = tw_connect(tw_sock);
	long before = tw_rss_kib(worker), after;
	size_t sent;

	if (fd < 0 || send_hello(fd) != 0) {
		tap_ok(0, "back-pressure: cannot connect");
		return;
	}
	sent = flood(fd);
	after = tw_rss_kib(worker);
	tap_ok(sent < ((size_t)64 << 20),
	       "a client that never reads is not read without bound (%zu MiB taken)", sent >> 20);
	tap_ok(before > 0 && after - before < 96 * 1024,
	       "the worker's memory stays bounded (%ld -> %ld KiB)", before, after);
	close(fd);
}

/* A run whose first line is 300 MB long, through the engine's client. */
static void check_long_line(void)
{
	FILE *in = popen("head -c 300000000 /dev/zero | tr '\\000' x", "r");
	struct eng_client_io io = { in, NULL, NULL, NULL, NULL };
	struct eng_error err;
	json_t *h = tw_hello("run", 1);
	long rc = in ? eng_client_run(tw_sock, h, &io, &err) : 0;

	tap_ok(rc == ENG_E_INVALID && strstr(err.msg, "input line 1 is longer than 268435456 bytes"),
	       "a 300 MB line ends the run with an error record (%ld: %s)", rc,
	       rc < 0 ? err.msg : "");
	if (in)
		pclose(in);
	json_decref(h);
}

/* The status hello, sent on fd; the reply within timeout_s. */
static char *status_on(int fd, double timeout_s)
{
	const char *h = "{\"type\":\"hello\",\"command\":\"status\"}\n";

	if (tw_send(fd, h, strlen(h)) != 0)
		return strdup("");
	return tw_read_all(fd, timeout_s);
}

static void check_many_connections(const char *sock)
{
	struct eng_worker_params wp;
	int *fds = calloc(N_CONN, sizeof(int)), extra, n = 0;
	char *reply;
	pid_t pid;

	eng_worker_default_params(&wp);
	wp.max_connections = N_CONN;
	pid = tw_start_worker(sock, &wp);
	while (n < N_CONN && (fds[n] = tw_connect(sock)) >= 0)
		n++;
	tap_ok(n == N_CONN, "%d connections at once", n);
	extra = tw_connect(sock);
	reply = extra >= 0 ? tw_read_all(extra, 30) : strdup("");
	tap_ok(strstr(reply, "\"type\":\"error\"") && strstr(reply, "at most 1100 connections"),
	       "one past --max-connections gets an error record: %.90s", reply);
	free(reply);
	if (extra >= 0)
		close(extra);
	reply = status_on(fds[0], 30);
	tap_ok(strstr(reply, "\"type\":\"status\"") != NULL,
	       "the oldest of %d connections is served: %.40s", n, reply);
	free(reply);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	tap_ok(tw_stop_worker(sock, pid) == 0, "the worker then shuts down cleanly");
}

/* More descriptors than N_CONN twice (ours and the worker's): true when
 * the limit allows it. */
static bool enough_files(void)
{
	struct rlimit rl;
	rlim_t want = 2 * N_CONN + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return false;
	if (rl.rlim_cur >= want)
		return true;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		return false;
	rl.rlim_cur = want;
	return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

static void check_idle_timeout(const char *sock)
{
	struct eng_worker_params wp;
	char *reply, *alone, *busy;
	long bad;
	pid_t pid;
	int fd;

	eng_worker_default_params(&wp);
	wp.idle_timeout_s = 1;
	pid = tw_start_worker(sock, &wp);
	fd = tw_connect(sock);
	reply = fd >= 0 ? tw_read_all(fd, 30) : strdup("");
	tap_ok(strstr(reply, "\"type\":\"error\"") && strstr(reply, "closed after 1 s"),
	       "a connection that says nothing is closed after --idle-timeout: %.80s", reply);
	free(reply);
	if (fd >= 0)
		close(fd);
	alone = tw_client_run(tw_sock, tw_input, 1, &bad);
	busy = tw_client_run(sock, tw_input, 1, &bad);
	tap_ok(bad == 1 && !strcmp(alone, busy), "a run that keeps going is not idle");
	free(alone);
	free(busy);
	tw_stop_worker(sock, pid);
}

/* Runs fn(arg) in a child as uid/gid 65534; its exit status. */
static int as_nobody(int (*fn)(const char *), const char *arg)
{
	pid_t pid = fork();
	int status = -1;

	if (pid == 0)
		_exit(setgid(65534) == 0 && setuid(65534) == 0 ? fn(arg) : 99);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* As another user: connects to the root worker's socket (opened to all
 * for the test) and expects the refusal; 0 when it came. */
static int foreign_client(const char *sock)
{
	int fd = tw_connect(sock);
	char *reply = fd >= 0 ? tw_read_all(fd, 30) : NULL;
	int ok = reply && strstr(reply, "serves only its own user");

	free(reply);
	return ok ? 0 : 1;
}

/* As another user: serves the tiny model on sock until shut down. */
static int foreign_worker(const char *sock)
{
	struct eng_worker_params wp;
	struct eng_infer_params p;
	struct eng_infer *e;
	struct eng_error err;
	int rc;

	eng_infer_default_params(&p);
	p.model_dir = tw_model;
	p.n_threads = 1;
	if (eng_infer_open(&p, &e, &err) != 0)
		return 98;
	eng_worker_default_params(&wp);
	wp.socket_path = sock;
	wp.idle_timeout_s = 20; /* ends it if the test goes wrong */
	rc = eng_worker_serve(e, &wp, &err);
	eng_infer_close(e);
	return rc == 0 ? 0 : 97;
}

static void check_peer_uid(void)
{
	char dir[160], sock[200];
	struct eng_client_io none = { NULL, NULL, NULL, NULL, NULL };
	struct eng_error err;
	json_t *h;
	pid_t pid;
	long rc;

	tap_ok(eng_sock_uid_allowed(1000, 1000, false) && !eng_sock_uid_allowed(1001, 1000, false) &&
	       !eng_sock_uid_allowed(0, 1000, false) && eng_sock_uid_allowed(0, 1000, true) &&
	       !eng_sock_uid_allowed(1001, 1000, true), "peer uids: the same user, root only when allowed");
	if (geteuid() != 0) {
		tap_ok(1, "# SKIP not root: no other user to test with");
		return;
	}
	/* A socket left open to all, in a directory all may enter: the uid
	 * check still holds. */
	chmod(tw_dir, 0755);
	chmod(tw_sock, 0666);
	tap_ok(as_nobody(foreign_client, tw_sock) == 0, "the worker refuses a client of another user");
	chmod(tw_sock, 0600);
	snprintf(dir, sizeof(dir), "%s/nobody", tw_dir);
	snprintf(sock, sizeof(sock), "%s/w.sock", dir);
	if (mkdir(dir, 0755) != 0 || chown(dir, 65534, 65534) != 0) {
		tap_ok(0, "cannot prepare a directory for another user");
		return;
	}
	pid = fork();
	if (pid == 0)
		_exit(setgid(65534) == 0 && setuid(65534) == 0 ? foreign_worker(sock) : 99);
	tw_wait_listening(sock);
	h = json_pack("{s:s,s:s}", "type", "hello", "command", "status");
	rc = eng_client_run(sock, h, &none, &err);
	tap_ok(rc == ENG_E_IO && strstr(err.msg, "runs as uid 65534"),
	       "the client refuses a worker of another user: %s", rc < 0 ? err.msg : "");
	json_decref(h);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

int main(void)
{
	char sock2[160];
	pid_t pid;

	if (tw_setup("worker-edges", 3) != 0)
		return tap_skip_all("cannot write the tiny model");
	snprintf(sock2, sizeof(sock2), "%s/w2.sock", tw_dir);
	pid = tw_start_worker(tw_sock, NULL);
	check_backpressure(pid);
	check_long_line();
	check_peer_uid();
	if (enough_files())
		check_many_connections(sock2);
	else
		tap_ok(1, "# SKIP the open-file limit is below %d", 2 * N_CONN + 256);
	check_idle_timeout(sock2);
	tap_ok(tw_stop_worker(tw_sock, pid) == 0, "after all this the first worker shuts down cleanly");
	tw_cleanup();
	return tap_done();
}
