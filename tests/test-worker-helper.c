/*
 * test-worker-helper.c: the worker tests' shared harness (see
 * test-worker-helper.h).  Everything a client run touches is its own, so
 * that threads can run clients at once.
 */
#include "tests/test-worker-helper.h"
#include "tools/modelgen/model_writer.h"
#include "tests/tap.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

char tw_dir[64], tw_model[128], tw_sock[128], tw_input[128];

const char *tw_conv_fmt =
	"{\"type\":\"conversation\",\"id\":\"c%d\",\"messages\":["
	"{\"role\":\"system\",\"content\":\"You are an agent.\"},"
	"{\"role\":\"user\",\"content\":\"Task number %d: fix the bug.\"},"
	"{\"role\":\"assistant\",\"content\":\"Looking.\"},"
	"{\"role\":\"user\",\"content\":\"Found it in file %d.\"},"
	"{\"role\":\"assistant\",\"content\":\"Fixed.\"}]}\n";

int tw_setup(const char *name, int n_convs)
{
	struct mw_params mp = mw_default_params();
	struct eng_error err;
	FILE *f;

	snprintf(tw_dir, sizeof(tw_dir), "/tmp/trajbench-%s-XXXXXX", name);
	if (!mkdtemp(tw_dir))
		return -1;
	snprintf(tw_model, sizeof(tw_model), "%s/m", tw_dir);
	snprintf(tw_sock, sizeof(tw_sock), "%s/w.sock", tw_dir);
	snprintf(tw_input, sizeof(tw_input), "%s/in.jsonl", tw_dir);
	if (mw_write(&mp, tw_model, NULL, &err) != 0 || !(f = fopen(tw_input, "w")))
		return -1;
	for (int i = 0; i < n_convs; i++)
		fprintf(f, tw_conv_fmt, i, i, i);
	fprintf(f, "this line is not JSON\n");
	fclose(f);
	return 0;
}

void tw_cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tw_dir);
	if (system(cmd) != 0)
		tap_diag("cannot remove %s", tw_dir);
}

static struct eng_infer *open_engine(void)
{
	struct eng_infer_params p;
	struct eng_infer *e;
	struct eng_error err;

	eng_infer_default_params(&p);
	p.model_dir = tw_model;
	p.n_threads = 1;
	p.page_size = 4;
	return eng_infer_open(&p, &e, &err) == 0 ? e : NULL;
}

pid_t tw_start_worker(const char *sock, const struct eng_worker_params *wp)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct eng_infer *e = open_engine();
		struct eng_worker_params p;
		struct eng_error err;
		int rc;

		if (wp)
			p = *wp;
		else
			eng_worker_default_params(&p);
		p.socket_path = sock;
		rc = e ? eng_worker_serve(e, &p, &err) : 1;
		if (rc != 0)
			fprintf(stderr, "worker: %s\n", e ? err.msg : "cannot load the model");
		eng_infer_close(e);
		_exit(rc == 0 ? 0 : 1);
	}
	tw_wait_listening(sock);
	return pid;
}

void tw_wait_listening(const char *sock)
{
	for (int i = 0; i < 500; i++) {
		int fd = tw_connect(sock);

		if (fd >= 0) {
			close(fd);
			return;
		}
		usleep(20000);
	}
}

int tw_stop_worker(const char *sock, pid_t pid)
{
	struct eng_client_io none = { NULL, NULL, NULL, NULL, NULL };
	struct eng_error err;
	json_t *h = json_pack("{s:s,s:s}", "type", "hello", "command", "shutdown");
	int status = -1;

	eng_client_run(sock, h, &none, &err);
	json_decref(h);
	/* a worker that does not stop within a minute is killed, so that a
	 * hang fails the test instead of stalling the whole suite */
	pid_t got = 0;

	for (int i = 0; i < 6000 && (got = waitpid(pid, &status, WNOHANG)) == 0; i++)
		usleep(10000);
	if (got < 0)
		return -1;
	if (got == 0) {
		fprintf(stderr, "# the worker did not stop after shutdown; killed\n");
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

json_t *tw_hello(const char *cmd, int batch)
{
	struct eng_run_params rp = { .run_name = "w", .mode = "replay" };

	eng_session_default_params(&rp.session);
	rp.session.batch_size = batch;
	rp.session.recorded_output = false;
	rp.output_details = true;
	return json_pack("{s:s,s:s,s:o}", "type", "hello", "command", cmd,
			 "params", eng_run_params_to_json(&rp));
}

/* "cN/TURN [ids]" of each request record in the records at buf. */
static int request_lines(const char *buf, size_t size, char (*lines)[256], int max)
{
	char *line = NULL;
	size_t cap = 0;
	int n = 0;
	FILE *f = fmemopen((void *)buf, size ? size : 1, "r");

	while (f && getline(&line, &cap, f) > 0 && n < max) {
		json_t *j = json_loads(line, 0, NULL);
		char *ids = json_dumps(json_object_get(j, "output_ids"), JSON_COMPACT);

		if (ids && !strcmp(json_string_value(json_object_get(j, "type")) ?: "", "request"))
			snprintf(lines[n++], sizeof(lines[0]), "%s/%lld %s",
				 json_string_value(json_object_get(j, "conversation_id")),
				 json_integer_value(json_object_get(j, "turn")), ids);
		free(ids);
		json_decref(j);
	}
	if (f)
		fclose(f);
	free(line);
	return n;
}

char *tw_client_run(const char *sock, const char *input, int batch, long *bad)
{
	char (*lines)[256] = calloc(64, sizeof(*lines));
	char *buf = NULL, *all;
	size_t size = 0;
	FILE *in = fopen(input, "r"), *out = open_memstream(&buf, &size);
	struct eng_client_io io = { in, out, NULL, NULL, NULL };
	struct eng_error err;
	json_t *h = tw_hello("run", batch);
	int n;

	*bad = eng_client_run(sock, h, &io, &err);
	json_decref(h);
	fclose(in);
	fclose(out);
	n = request_lines(buf, size, lines, 64);
	free(buf);
	qsort(lines, (size_t)n, sizeof(lines[0]), (int (*)(const void *, const void *))strcmp);
	all = calloc((size_t)n + 1, sizeof(lines[0]));
	for (int i = 0; i < n; i++)
		strcat(strcat(all, lines[i]), ";");
	free(lines);
	return all;
}

int tw_connect(const char *sock)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

int tw_send(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

char *tw_read_all(int fd, double timeout_s)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&buf, &size);
	char chunk[65536];

	for (int waited_ms = 0; waited_ms < timeout_s * 1000;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 100) == 0) {
			waited_ms += 100;
			continue;
		}
		n = read(fd, chunk, sizeof(chunk));
		if (n <= 0)
			break;
		fwrite(chunk, 1, (size_t)n, out);
	}
	fclose(out);
	return buf;
}

long tw_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}
