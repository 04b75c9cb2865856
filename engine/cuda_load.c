/*
 * cuda_load.c: finds and loads libtrajbench-cuda.so (cuda_plugin.h) the
 * first time a run asks for the CUDA backend.
 *
 * Looks, in order, at $TRAJBENCH_CUDA_BACKEND, at ../engine/ beside the
 * running program (tools/ and tests/ of the build tree) and at the
 * installed pkglibdir.  The first object that loads is kept for the life
 * of the process (never unloaded: the CUDA runtime does not survive
 * dlclose).  What it refuses: an object of another version or ABI, and
 * any error is the caller's to report (ENG_E_DEVICE, exit status 3 in the
 * tools), never a crash at first use.
 */
#include <config.h>

#include "engine/cuda_plugin.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TRAJBENCH_PKGLIBDIR
#define TRAJBENCH_PKGLIBDIR "/usr/local/lib/trajbench"
#endif

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct eng_cuda_plugin *loaded;

/* The build tree's object: <dir of the program>/../engine/. */
static int beside_program(char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return -1;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	return snprintf(buf, len, "%s/../engine/%s", exe, ENG_CUDA_PLUGIN_FILE) < (int)len ? 0 : -1;
}

/* Tries one path.  Returns the table, or NULL with why appended to msg
 * (nothing appended when the file does not exist and quiet). */
static const struct eng_cuda_plugin *try_path(const char *path, bool quiet, char *msg,
					      size_t len)
{
	const struct eng_cuda_plugin *(*get)(void);
	const struct eng_cuda_plugin *p;
	size_t used = strlen(msg);
	void *lib, *sym;

	if (quiet && access(path, F_OK) != 0)
		return NULL;
	lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(msg + used, len - used, "%s%s", used ? "; " : ": ", dlerror());
		return NULL;
	}
	sym = dlsym(lib, ENG_CUDA_PLUGIN_ENTRY);
	memcpy(&get, &sym, sizeof(sym));
	p = get ? get() : NULL;
	if (!p || p->abi != ENG_CUDA_PLUGIN_ABI || strcmp(p->version, PACKAGE_VERSION) != 0) {
		snprintf(msg + used, len - used, "%s%s: %s", used ? "; " : ": ", path,
			 p ? "built by another version of trajbench" : "not a trajbench CUDA backend");
		dlclose(lib);
		return NULL;
	}
	return p;
}

static const struct eng_cuda_plugin *find(char *msg, size_t len)
{
	const char *env = getenv(ENG_CUDA_PLUGIN_ENV);
	char path[PATH_MAX];
	const struct eng_cuda_plugin *p = NULL;

	if (env && *env)
		return try_path(env, false, msg, len);
	if (beside_program(path, sizeof(path)) == 0)
		p = try_path(path, true, msg, len);
	if (!p)
		p = try_path(TRAJBENCH_PKGLIBDIR "/" ENG_CUDA_PLUGIN_FILE, true, msg, len);
	return p;
}

int eng_cuda_load(const struct eng_cuda_plugin **out, struct eng_error *err)
{
	char msg[1024] = "";

	pthread_mutex_lock(&load_lock);
	if (!loaded)
		loaded = find(msg, sizeof(msg));
	*out = loaded;
	pthread_mutex_unlock(&load_lock);
	if (*out)
		return 0;
#ifdef HAVE_CUDA
	if (!msg[0])
		return eng_error_set(err, ENG_E_DEVICE, NULL, 0,
				     "the CUDA backend (%s) is not in ../engine/ beside this "
				     "program nor in %s; set %s to its path", ENG_CUDA_PLUGIN_FILE,
				     TRAJBENCH_PKGLIBDIR, ENG_CUDA_PLUGIN_ENV);
	return eng_error_set(err, ENG_E_DEVICE, NULL, 0, "the CUDA backend cannot be loaded%s",
			     msg);
#else
	return eng_error_set(err, ENG_E_DEVICE, NULL, 0,
			     "device cuda is not available in this build (configure found no "
			     "CUDA)%s", msg);
#endif
}
