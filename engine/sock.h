/*
 * sock.h: the Unix-socket plumbing of the worker and its client (internal
 * to engine/): a listening socket that never clobbers what is at its path
 * and is removed only while it is still ours, a connection that checks who
 * serves it, and the peer-uid rule both sides apply.
 */
#ifndef TRAJBENCH_ENG_SOCK_H
#define TRAJBENCH_ENG_SOCK_H

#include <stdbool.h>
#include <sys/types.h>

#include "engine/error.h"

/* A listening socket and the file it made at its path. */
struct eng_listener {
	int fd;
	char path[108];   /* sizeof(sun_path) */
	dev_t dev;        /* the socket file we created, to remove only it */
	ino_t ino;
};

/* Listens on path (mode 0600, non-blocking, close-on-exec).  What is at
 * path already: nothing, or a socket nobody answers on (stale, removed),
 * is fine; a file that is not a socket, or a socket a worker answers on, is
 * refused (ENG_E_IO, naming path) and left alone.  ENG_E_INVALID for a path
 * too long for a socket address. */
int eng_listener_open(const char *path, struct eng_listener *l, struct eng_error *err);

/* Closes the socket and removes its file, but only if the file at the path
 * is still the one eng_listener_open created (another worker may have
 * replaced it, or someone put another file there). */
void eng_listener_close(struct eng_listener *l);

/* Whether a peer of uid peer may talk to a process of uid self: the same
 * user, or root when allow_root. */
bool eng_sock_uid_allowed(uid_t peer, uid_t self, bool allow_root);

/* The uid of the process at the other end of a connected socket. */
int eng_sock_peer_uid(int fd, uid_t *uid);

/* Connects to the worker at path and checks that it runs as our own user
 * (SO_PEERCRED): a socket another user made is refused.  Returns the
 * socket, or ENG_E_INVALID (path too long) / ENG_E_IO (no worker answers,
 * or another user's) with err filled. */
int eng_sock_connect(const char *path, struct eng_error *err);

#endif
