/*
 * sock.c: Unix-socket plumbing of the worker and its client (see sock.h).
 *
 * A worker is often started on a path in a shared directory (/tmp), so
 * neither end trusts what it finds there.  The worker replaces only a stale
 * socket (a socket file nobody accepts on: connect says ECONNREFUSED), and
 * at exit removes the file only while its device and inode are still those
 * of the socket it bound.  The checks and the removal are separate system
 * calls, so a process racing us on the same path can still win; what it
 * cannot do is make us delete a file we did not create by leaving it there
 * before we start or after we stop.
 *
 * Both ends check the peer's uid with SO_PEERCRED, which the kernel fills
 * in at connect/listen time and nobody can forge: the worker serves its own
 * user (and root when asked), the client talks only to a worker of its own
 * user, so a socket planted in a shared directory gets no one's input.
 */
#include "engine/sock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTEN_BACKLOG 128

static int fill_addr(const char *path, struct sockaddr_un *addr, struct eng_error *err)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr->sun_path))
		return eng_error_set(err, ENG_E_INVALID, path, 0, "socket path too long");
	memcpy(addr->sun_path, path, strlen(path) + 1);
	return 0;
}

/* Whether a worker answers on the socket file at path: 1 yes, 0 no (stale
 * or gone), or a negative ENG_E_* when it cannot be told. */
static int probe(const struct sockaddr_un *addr, const char *path, struct eng_error *err)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rc, e;

	if (fd < 0)
		return eng_error_set(err, ENG_E_IO, path, 0, "socket: %s", strerror(errno));
	rc = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS) /* EAGAIN: a full backlog */
		return 1;
	if (e == ECONNREFUSED || e == ENOENT)
		return 0;
	return eng_error_set(err, ENG_E_IO, path, 0, "cannot tell whether a worker serves it: %s",
			     strerror(e));
}

/* Makes way for the socket: nothing there, or a stale socket removed. */
static int clear_path(const struct sockaddr_un *addr, const char *path, struct eng_error *err)
{
	struct stat st;
	int live;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : eng_error_set(err, ENG_E_IO, path, 0, "%s", strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return eng_error_set(err, ENG_E_IO, path, 0, "exists and is not a socket; not replacing it");
	live = probe(addr, path, err);
	if (live < 0)
		return live;
	if (live)
		return eng_error_set(err, ENG_E_IO, path, 0, "a worker already serves this socket");
	if (unlink(path) != 0 && errno != ENOENT)
		return eng_error_set(err, ENG_E_IO, path, 0, "cannot remove the stale socket: %s",
				     strerror(errno));
	return 0;
}

/* A socket bound to addr with mode 0600 (umask 077 while binding, so it is
 * never open to others), or a negative ENG_E_*. */
static int bind_private(const struct sockaddr_un *addr, const char *path, struct eng_error *err)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	mode_t old;
	int rc, e;

	if (fd < 0)
		return eng_error_set(err, ENG_E_IO, path, 0, "socket: %s", strerror(errno));
	old = umask(077);
	rc = bind(fd, (const struct sockaddr *)addr, sizeof(*addr));
	e = errno;
	umask(old);
	if (rc != 0) {
		close(fd);
		return eng_error_set(err, ENG_E_IO, path, 0, "cannot listen: %s", strerror(e));
	}
	return fd;
}

int eng_listener_open(const char *path, struct eng_listener *l, struct eng_error *err)
{
	struct sockaddr_un addr;
	struct stat st;
	int rc, fd;

	l->fd = -1;
	if ((rc = fill_addr(path, &addr, err)) != 0 || (rc = clear_path(&addr, path, err)) != 0)
		return rc;
	fd = bind_private(&addr, path, err);
	if (fd < 0)
		return fd;
	if (lstat(path, &st) != 0) { /* cannot know our file: leave it */
		rc = eng_error_set(err, ENG_E_IO, path, 0, "cannot stat the socket: %s", strerror(errno));
		close(fd);
		return rc;
	}
	l->fd = fd;
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	memcpy(l->path, path, strlen(path) + 1);
	if (chmod(path, 0600) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		rc = eng_error_set(err, ENG_E_IO, path, 0, "cannot listen: %s", strerror(errno));
		eng_listener_close(l);
		return rc;
	}
	return 0;
}

void eng_listener_close(struct eng_listener *l)
{
	struct stat st;

	if (l->fd < 0)
		return;
	close(l->fd);
	l->fd = -1;
	if (lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(l->path);
}

bool eng_sock_uid_allowed(uid_t peer, uid_t self, bool allow_root)
{
	return peer == self || (allow_root && peer == 0);
}

int eng_sock_peer_uid(int fd, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred))
		return -1;
	*uid = cred.uid;
	return 0;
}

int eng_sock_connect(const char *path, struct eng_error *err)
{
	struct sockaddr_un addr;
	uid_t peer;
	int fd, rc = fill_addr(path, &addr, err);

	if (rc != 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		return eng_error_set(err, ENG_E_IO, path, 0, "no worker answers: %s", strerror(e));
	}
	if (eng_sock_peer_uid(fd, &peer) != 0) {
		close(fd);
		return eng_error_set(err, ENG_E_IO, path, 0, "cannot tell who serves it: %s",
				     strerror(errno));
	}
	if (!eng_sock_uid_allowed(peer, geteuid(), false)) {
		close(fd);
		return eng_error_set(err, ENG_E_IO, path, 0,
				     "the worker runs as uid %ld, not as this user (uid %ld); "
				     "not talking to it", (long)peer, (long)geteuid());
	}
	return fd;
}
