/*
 * test-worker.c: the persistent worker, over a real Unix socket.
 *
 * A child process loads a tiny model and serves; the parent is the client.
 * Checks: the socket is mode 0600; a run through the worker gives the same
 * generated tokens as in-process; two clients at once both complete; a
 * client that disconnects mid-run does not disturb the worker, which then
 * serves the next run; status answers; shutdown stops it and removes the
 * socket.
 */
#include "engine/infer.h"
#include "tools/modelgen/model_writer.h"
#include "tests/tap.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/trajbench-worker-XXXXXX";
static char model[128], sock[128], input[128];

static const char *conv =
	"{\"type\":\"conversation\",\"id\":\"c%d\",\"messages\":["
	"{\"role\":\"system\",\"content\":\"You are an agent.\"},"
	"{\"role\":\"user\",\"content\":\"Task number %d: fix the bug.\"},"
	"{\"role\":\"assistant\",\"content\":\"Looking.\"},"
	"{\"role\":\"user\",\"content\":\"Found it in file %d.\"},"
	"{\"role\":\"assistant\",\"content\":\"Fixed.\"}]}\n";

static struct eng_infer *open_engine(void)
{
	struct eng_infer_params p;
	struct eng_infer *e;
	struct eng_error err;

	eng_infer_default_params(&p);
	p.model_dir = model;
	p.n_threads = 1;
	p.page_size = 4;
	return eng_infer_open(&p, &e, &err) == 0 ? e : NULL;
}

static pid_t start_worker(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct eng_infer *e = open_engine();
		struct eng_error err;
		int rc = e ? eng_worker_serve(e, sock, &err) : 1;

		eng_infer_close(e);
		_exit(rc == 0 ? 0 : 1);
	}
	for (int i = 0; i < 200 && access(sock, F_OK) != 0; i++)
		usleep(20000);
	return pid;
}

static json_t *hello(const char *cmd, int batch)
{
	struct eng_run_params rp = { .run_name = "w", .mode = "replay" };

	eng_session_default_params(&rp.session);
	rp.session.batch_size = batch;
	rp.session.recorded_output = false;
	rp.output_details = true;
	return json_pack("{s:s,s:s,s:o}", "type", "hello", "command", cmd,
			 "params", eng_run_params_to_json(&rp));
}

/* Runs the input file through the worker; returns the request records'
 * output ids, sorted by conversation and turn, as one string.  Two
 * threads run it at once: nothing in it is static. */
static char *client_run(int batch, long *bad)
{
	char (*lines)[256] = calloc(64, sizeof(*lines));
	char *buf = NULL, *line = NULL, *all;
	size_t size = 0, cap = 0;
	int n = 0;
	FILE *in = fopen(input, "r"), *out = open_memstream(&buf, &size);
	struct eng_client_io io = { in, out, NULL, NULL, NULL };
	struct eng_error err;
	json_t *h = hello("run", batch);

	*bad = eng_client_run(sock, h, &io, &err);
	json_decref(h);
	fclose(in);
	fclose(out);
	for (FILE *f = fmemopen(buf, size ? size : 1, "r"); f; fclose(f), f = NULL)
		while (getline(&line, &cap, f) > 0 && n < 64) {
			json_t *j = json_loads(line, 0, NULL);
			char *ids = json_dumps(json_object_get(j, "output_ids"), JSON_COMPACT);

			if (ids && !strcmp(json_string_value(json_object_get(j, "type")), "request"))
				snprintf(lines[n++], sizeof(lines[0]), "%s/%lld %s",
					 json_string_value(json_object_get(j, "conversation_id")),
					 json_integer_value(json_object_get(j, "turn")), ids);
			free(ids);
			json_decref(j);
		}
	free(line);
	free(buf);
	qsort(lines, (size_t)n, sizeof(lines[0]), (int (*)(const void *, const void *))strcmp);
	all = calloc((size_t)n + 1, sizeof(lines[0]));
	for (int i = 0; i < n; i++)
		strcat(strcat(all, lines[i]), ";");
	free(lines);
	return all;
}

static void *client_thread(void *arg)
{
	long bad;

	(void)arg;
	return client_run(2, &bad);
}

/* Connects, sends a hello and half the input, and hangs up. */
static void rude_client(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	json_t *h = hello("run", 4);
	char *s = json_dumps(h, JSON_COMPACT), line[512];

	strcpy(addr.sun_path, sock);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
		if (write(fd, s, strlen(s)) < 0 || write(fd, "\n", 1) < 0)
			tap_diag("write failed");
		for (int i = 0; i < 3; i++) {
			snprintf(line, sizeof(line), conv, 100 + i, i, i);
			if (write(fd, line, strlen(line)) < 0)
				break;
		}
		usleep(50000);
	}
	close(fd);
	free(s);
	json_decref(h);
}

int main(void)
{
	struct mw_params mp = mw_default_params();
	struct eng_error err;
	struct stat st;
	struct eng_client_io none = { NULL, NULL, NULL, NULL, NULL };
	char *a, *b, *c, *d;
	pthread_t t;
	long bad;
	int status = -1;
	FILE *f;
	json_t *h;
	pid_t pid;

	if (!mkdtemp(dir))
		return tap_skip_all("no temporary directory");
	snprintf(model, sizeof(model), "%s/m", dir);
	snprintf(sock, sizeof(sock), "%s/w.sock", dir);
	snprintf(input, sizeof(input), "%s/in.jsonl", dir);
	if (mw_write(&mp, model, NULL, &err) != 0)
		return tap_skip_all("model writer failed");
	f = fopen(input, "w");
	for (int i = 0; i < 5; i++)
		fprintf(f, conv, i, i, i);
	fprintf(f, "this line is not JSON\n");
	fclose(f);
	pid = start_worker();
	tap_ok(stat(sock, &st) == 0 && (st.st_mode & 0777) == 0600, "the socket is mode 0600");
	a = client_run(1, &bad);
	tap_ok(bad == 1 && strlen(a) > 0, "a run through the worker completes, the bad line counted");
	pthread_create(&t, NULL, client_thread, NULL);
	b = client_run(3, &bad);
	pthread_join(t, (void **)&c);
	tap_ok(!strcmp(a, b) && !strcmp(a, c), "two clients at once get the same tokens as one alone");
	rude_client();
	d = client_run(5, &bad);
	tap_ok(!strcmp(a, d), "after a client hangs up mid-run, the worker still serves");
	h = json_pack("{s:s,s:s}", "type", "hello", "command", "status");
	{
		char *sbuf = NULL;
		size_t slen = 0;
		struct eng_client_io sio = { NULL, open_memstream(&sbuf, &slen), NULL, NULL, NULL };

		bad = eng_client_run(sock, h, &sio, &err);
		fclose(sio.out);
		tap_ok(bad == 0 && sbuf && strstr(sbuf, "\"type\":\"status\"") &&
		       strstr(sbuf, "\"runs_served\":5"), "status answers: %.60s", sbuf ? sbuf : "");
		free(sbuf);
	}
	json_decref(h);
	h = json_pack("{s:s,s:s}", "type", "hello", "command", "shutdown");
	eng_client_run(sock, h, &none, &err);
	json_decref(h);
	waitpid(pid, &status, 0);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && access(sock, F_OK) != 0,
	       "shutdown stops the worker and removes the socket");
	free(a);
	free(b);
	free(c);
	free(d);
	snprintf(input, sizeof(input), "rm -rf %s", dir);
	if (system(input) != 0)
		tap_diag("cannot remove %s", dir);
	return tap_done();
}
