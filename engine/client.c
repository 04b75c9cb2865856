/*
 * client.c: the client side of the worker protocol (see engine.h).
 *
 * Streams the input file to the socket and the records back to the output
 * at the same time (poll(2) on both), so that neither side can fill the
 * other's buffers and deadlock.  Diagnostics come back as records and are
 * handed to the caller; the final "end" record carries the bad count.
 */
#include "engine/engine.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct cstate {
	const struct eng_client_io *io;
	char *acc;              /* partial line from the worker */
	size_t acc_len, acc_cap;
	long bad;               /* from the end record; -1 until seen */
	char errmsg[512];
};

static int connect_to(const char *path, struct eng_error *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path))
		return eng_error_set(err, ENG_E_INVALID, path, 0, "socket path too long");
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		return eng_error_set(err, ENG_E_IO, path, 0, "no worker answers: %s", strerror(e));
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One line from the worker: a record for the output, or ours. */
static void handle_line(struct cstate *st, char *line, size_t len)
{
	json_t *rec = json_loadb(line, len, 0, NULL);
	const char *type = json_string_value(json_object_get(rec, "type"));

	if (type && !strcmp(type, "diagnostic")) {
		if (st->io->diag)
			st->io->diag(st->io->ctx,
				     (long)json_integer_value(json_object_get(rec, "line")),
				     json_string_value(json_object_get(rec, "message")) ?: "");
	} else if (type && !strcmp(type, "end")) {
		st->bad = (long)json_integer_value(json_object_get(rec, "bad"));
	} else if (type && !strcmp(type, "error")) {
		snprintf(st->errmsg, sizeof(st->errmsg), "%s",
			 json_string_value(json_object_get(rec, "message")) ?: "worker error");
	} else if (st->io->out) {
		fwrite(line, 1, len, st->io->out);
		fputc('\n', st->io->out);
		if (rec && st->io->on_record)
			st->io->on_record(st->io->ctx, rec);
	}
	json_decref(rec);
}

static int take_output(struct cstate *st, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			handle_line(st, st->acc, st->acc_len);
			st->acc_len = 0;
			continue;
		}
		if (st->acc_len + 1 > st->acc_cap) {
			size_t cap = st->acc_cap ? 2 * st->acc_cap : 65536;
			char *q = realloc(st->acc, cap);

			if (!q)
				return -1;
			st->acc = q;
			st->acc_cap = cap;
		}
		st->acc[st->acc_len++] = p[i];
	}
	return 0;
}

/* Pumps input to fd and output from it until the worker closes. */
static int pump(int fd, struct cstate *st, struct eng_error *err)
{
	int in_fd = st->io->in ? fileno(st->io->in) : -1;
	bool in_open = in_fd >= 0;
	char buf[65536];

	if (!in_open)
		shutdown(fd, SHUT_WR);
	for (;;) {
		struct pollfd fds[2] = { { .fd = fd, .events = POLLIN }, { .fd = in_fd, .events = POLLIN } };
		ssize_t n;

		if (poll(fds, in_open ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return eng_error_set(err, ENG_E_IO, NULL, 0, "poll: %s", strerror(errno));
		}
		if (in_open && (fds[1].revents & (POLLIN | POLLHUP))) {
			n = read(in_fd, buf, sizeof(buf));
			if (n > 0 && send_all(fd, buf, (size_t)n) != 0)
				return eng_error_set(err, ENG_E_IO, NULL, 0, "the worker went away");
			if (n == 0) {
				in_open = false;
				shutdown(fd, SHUT_WR);
			} else if (n < 0 && errno != EINTR) {
				return eng_error_set(err, ENG_E_IO, NULL, 0, "read: %s", strerror(errno));
			}
		}
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(fd, buf, sizeof(buf));
			if (n == 0)
				return 0;
			if (n < 0 && errno != EINTR)
				return eng_error_set(err, ENG_E_IO, NULL, 0, "the worker went away: %s",
						     strerror(errno));
			if (n > 0 && take_output(st, buf, (size_t)n) != 0)
				return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
		}
	}
}

long eng_client_run(const char *socket_path, const json_t *hello, const struct eng_client_io *io,
		    struct eng_error *err)
{
	struct cstate st = { .io = io, .bad = -1 };
	char *h = json_dumps(hello, JSON_COMPACT);
	int fd = connect_to(socket_path, err);
	int rc = fd < 0 ? fd : 0;

	if (rc == 0 && (!h || send_all(fd, h, strlen(h)) != 0 || send_all(fd, "\n", 1) != 0))
		rc = eng_error_set(err, ENG_E_IO, socket_path, 0, "cannot send to the worker");
	if (rc == 0)
		rc = pump(fd, &st, err);
	if (rc == 0 && st.errmsg[0])
		rc = eng_error_set(err, ENG_E_INVALID, socket_path, 0, "%s", st.errmsg);
	free(h);
	free(st.acc);
	if (fd >= 0)
		close(fd);
	if (rc != 0)
		return rc;
	/* status and shutdown have no end record; a run that lost its end
	 * record lost its worker. */
	if (st.bad < 0 && io->in)
		return eng_error_set(err, ENG_E_IO, socket_path, 0, "the worker ended the run early");
	return st.bad < 0 ? 0 : st.bad;
}
