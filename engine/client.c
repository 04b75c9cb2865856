/*
 * client.c: the client side of the worker protocol (see engine.h).
 *
 * Streams the input file to the socket and the records back to the output
 * at the same time: one poll(2) over the socket (readable, and writable
 * while input waits to be sent) and the input, with sends that never block,
 * so neither side can fill the other's buffers and deadlock (the worker
 * stops reading a client that does not read its records).  Diagnostics come
 * back as records and are handed to the caller; the final "end" record
 * carries the bad count.  An "error" record says why the worker ends or
 * refuses the connection; it is read even after the worker stopped taking
 * input, and it is what the caller is told.
 */
#include "engine/engine.h"
#include "engine/sock.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK 65536

struct cstate {
	const struct eng_client_io *io;
	char *acc;              /* partial line from the worker */
	size_t acc_len, acc_cap;
	const char *pend;       /* bytes waiting to go to the worker: the hello, */
	size_t n_pend;          /* then chunks of the input */
	char chunk[CHUNK];
	bool in_open;           /* input left to read */
	bool send_open;         /* the worker still takes what we send */
	long bad;               /* from the end record; -1 until seen */
	int out_errno;          /* nonzero once writing io->out failed */
	char errmsg[512];
};

/* Writes one record line to the output; -1 when that fails, with the
 * write's errno kept for the caller. */
static int put_record(struct cstate *st, const char *line, size_t len)
{
	FILE *out = st->io->out;

	if (fwrite(line, 1, len, out) == len && putc('\n', out) != EOF && !ferror(out))
		return 0;
	st->out_errno = errno ? errno : EIO;
	return -1;
}

/* One line from the worker: a record for the output, or ours.  -1 when
 * the output cannot be written: the run stops, nothing more is lost. */
static int handle_line(struct cstate *st, char *line, size_t len)
{
	json_t *rec = json_loadb(line, len, 0, NULL);
	const char *type = json_string_value(json_object_get(rec, "type"));
	int rc = 0;

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
		errno = 0;
		rc = put_record(st, line, len);
		if (rc == 0 && rec && st->io->on_record)
			st->io->on_record(st->io->ctx, rec);
	}
	json_decref(rec);
	return rc;
}

static int take_output(struct cstate *st, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			size_t len = st->acc_len;

			st->acc_len = 0;
			if (handle_line(st, st->acc, len) != 0)
				return -2;
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

/* Reads the next chunk of input to send; at its end, the worker is told
 * (shutdown of our side) once all of it has gone. */
static int read_input(struct cstate *st, int in_fd, struct eng_error *err)
{
	ssize_t n = read(in_fd, st->chunk, sizeof(st->chunk));

	if (n > 0) {
		st->pend = st->chunk;
		st->n_pend = (size_t)n;
	} else if (n == 0) {
		st->in_open = false;
	} else if (errno != EINTR) {
		return eng_error_set(err, ENG_E_IO, NULL, 0, "read: %s", strerror(errno));
	}
	return 0;
}

/* Sends what it can without blocking.  A worker that no longer reads
 * (it closed, or refused us) ends the sending, not the run: its error
 * record may still be on the way. */
static void send_some(int fd, struct cstate *st)
{
	while (st->n_pend > 0) {
		ssize_t w = send(fd, st->pend, st->n_pend, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0) {
			st->pend += w;
			st->n_pend -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		st->n_pend = 0;
		st->in_open = st->send_open = false;
		return;
	}
}

/* Reads records from the worker: 1 more to come, 0 the worker closed, or
 * a negative ENG_E_*. */
static int read_output(int fd, struct cstate *st, struct eng_error *err)
{
	char buf[CHUNK];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n == 0)
		return 0;
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1
			: eng_error_set(err, ENG_E_IO, NULL, 0, "the worker went away: %s",
					strerror(errno));
	n = take_output(st, buf, (size_t)n);
	if (n == -2)
		return eng_error_set(err, ENG_E_IO, NULL, 0, "write error: %s", strerror(st->out_errno));
	if (n != 0)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	return 1;
}

/* Pumps input to fd and output from it until the worker closes: 0, or a
 * negative ENG_E_*. */
static int pump(int fd, struct cstate *st, struct eng_error *err)
{
	int in_fd = st->io->in ? fileno(st->io->in) : -1;

	st->in_open = in_fd >= 0;
	st->send_open = true;
	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = fd, .events = POLLIN | (st->n_pend ? POLLOUT : 0) },
			{ .fd = st->in_open && !st->n_pend ? in_fd : -1, .events = POLLIN },
		};
		int rc;

		if (st->send_open && !st->in_open && !st->n_pend) {
			shutdown(fd, SHUT_WR);
			st->send_open = false;
		}
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return eng_error_set(err, ENG_E_IO, NULL, 0, "poll: %s", strerror(errno));
		}
		if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			rc = read_input(st, in_fd, err);
			if (rc != 0)
				return rc;
		}
		if (fds[0].revents & POLLOUT)
			send_some(fd, st);
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			rc = read_output(fd, st, err);
			if (rc <= 0)
				return rc;
		}
	}
}

/* The hello as one line, to be sent first. */
static char *hello_line(const json_t *hello, size_t *len)
{
	char *h = json_dumps(hello, JSON_COMPACT), *line;

	if (!h)
		return NULL;
	*len = strlen(h);
	line = realloc(h, *len + 2);
	if (!line) {
		free(h);
		return NULL;
	}
	line[(*len)++] = '\n';
	line[*len] = '\0';
	return line;
}

/* What the run came to, from what the pump returned (rc) and what the
 * worker said: a lost output first, then the worker's error record, then
 * how the connection ended. */
static long run_result(const struct cstate *st, int rc, const char *path, struct eng_error *err)
{
	if (st->out_errno)
		return rc;
	if (st->errmsg[0])
		return eng_error_set(err, ENG_E_INVALID, path, 0, "%s", st->errmsg);
	if (rc != 0)
		return rc;
	/* status and shutdown have no end record; a run that lost its end
	 * record lost its worker. */
	if (st->bad < 0 && st->io->in)
		return eng_error_set(err, ENG_E_IO, path, 0, "the worker ended the run early");
	return st->bad < 0 ? 0 : st->bad;
}

long eng_client_run(const char *socket_path, const json_t *hello, const struct eng_client_io *io,
		    struct eng_error *err)
{
	struct cstate *st = calloc(1, sizeof(*st));
	char *h = st ? hello_line(hello, &st->n_pend) : NULL;
	long rc;
	int fd, out_errno;

	if (!h) {
		free(st);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	}
	st->io = io;
	st->bad = -1;
	st->pend = h;
	fd = eng_sock_connect(socket_path, err);
	if (fd < 0) {
		rc = fd;
	} else {
		rc = run_result(st, pump(fd, st, err), socket_path, err);
		close(fd);
	}
	out_errno = st->out_errno;
	free(h);
	free(st->acc);
	free(st);
	if (out_errno)
		errno = out_errno;
	return rc;
}
