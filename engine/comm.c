/*
 * comm.c: the tensor-parallel all-reduce (see comm.h): the "local" kind
 * over the kernels, the "nccl" kind over NCCL loaded with dlopen.
 *
 * Only the five NCCL functions used are resolved, through declarations
 * of our own (values checked against nccl.h of NCCL 2.x: ncclSuccess 0,
 * ncclFloat32 7, ncclSum 0; a communicator is an opaque pointer), so the
 * build needs no nccl.h and no libnccl.
 *
 * Refuses: ranks that share some devices but not all (neither kind
 * serves them); more than KN_TP_MAX ranks.
 */
#include <config.h>

#include "engine/comm.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

typedef struct nccl_comm *nccl_comm_t;

enum { NCCL_SUCCESS = 0, NCCL_FLOAT32 = 7, NCCL_SUM = 0 };

struct nccl_api {
	void *lib;
	int (*init_all)(nccl_comm_t *comms, int n, const int *devs);
	int (*destroy)(nccl_comm_t comm);
	int (*all_reduce)(const void *send, void *recv, size_t count, int dtype, int op,
			  nccl_comm_t comm, kn_stream s);
	int (*group_start)(void);
	int (*group_end)(void);
	const char *(*error_string)(int rc);
};

struct eng_comm {
	int n, nccl;
	int devices[KN_TP_MAX];
	kn_stream streams[KN_TP_MAX];
	struct nccl_api api;
	nccl_comm_t comms[KN_TP_MAX];
};

const char *eng_comm_kind(const struct eng_comm *c)
{
	return c->nccl ? "nccl" : "local";
}

/* ---------------------------------------------------------------- nccl */

static void *sym(void *lib, const char *name, int *missing)
{
	void *p = dlsym(lib, name);

	*missing |= p == NULL;
	return p;
}

/* a->field = the library's function name (object to function pointer
 * through memcpy, as dlsym's callers must) */
#define RESOLVE(field, name)                                           \
	do {                                                           \
		void *p_ = sym(a->lib, name, &missing);                \
		memcpy(&a->field, &p_, sizeof(p_));                    \
	} while (0)

/* Resolves the functions used from $TRAJBENCH_NCCL or libnccl.so.2. */
static int nccl_load(struct nccl_api *a, struct eng_error *err)
{
	const char *env = getenv("TRAJBENCH_NCCL");
	int missing = 0;

	a->lib = env && *env ? dlopen(env, RTLD_NOW | RTLD_LOCAL) : NULL;
	if (!a->lib)
		a->lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
	if (!a->lib && env && *env)
		return eng_error_set(err, ENG_E_DEVICE, "nccl", 0,
				     "tensor parallelism over several GPUs needs NCCL: neither "
				     "TRAJBENCH_NCCL=%s nor libnccl.so.2 could be loaded", env);
	if (!a->lib)
		return eng_error_set(err, ENG_E_DEVICE, "nccl", 0,
				     "tensor parallelism over several GPUs needs NCCL: "
				     "libnccl.so.2 not found (set TRAJBENCH_NCCL to its path)");
	RESOLVE(init_all, "ncclCommInitAll");
	RESOLVE(destroy, "ncclCommDestroy");
	RESOLVE(all_reduce, "ncclAllReduce");
	RESOLVE(group_start, "ncclGroupStart");
	RESOLVE(group_end, "ncclGroupEnd");
	RESOLVE(error_string, "ncclGetErrorString");
	if (missing) {
		dlclose(a->lib);
		a->lib = NULL;
		return eng_error_set(err, ENG_E_DEVICE, "nccl", 0,
				     "the NCCL library found lacks ncclCommInitAll, "
				     "ncclAllReduce or another function used");
	}
	return 0;
}

static int nccl_fail(const struct eng_comm *c, int rc, const char *call, struct eng_error *err)
{
	return eng_error_set(err, ENG_E_DEVICE, "nccl", 0, "%s: %s", call,
			     c->api.error_string ? c->api.error_string(rc) : "failed");
}

static int nccl_open(struct eng_comm *c, struct eng_error *err)
{
	int rc;

	/* NVLink multicast stays off whatever the environment says */
	setenv("NCCL_NVLS_ENABLE", "0", 1);
	if ((rc = nccl_load(&c->api, err)))
		return rc;
	if ((rc = c->api.init_all(c->comms, c->n, c->devices)) != NCCL_SUCCESS) {
		memset(c->comms, 0, sizeof(c->comms));
		return nccl_fail(c, rc, "ncclCommInitAll", err);
	}
	c->nccl = 1;
	return 0;
}

/* ---------------------------------------------------------------- group */

/* 1: every device the same; 0: all distinct; -1: neither. */
static int shared_devices(int n, const int *devices)
{
	int same = 1, distinct = 1;

	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++) {
			same &= devices[i] == devices[j];
			distinct &= devices[i] != devices[j];
		}
	return same ? 1 : distinct ? 0 : -1;
}

int eng_comm_create(int n, const int *devices, const kn_stream *streams,
		    struct eng_comm **out, struct eng_error *err)
{
	struct eng_comm *c;
	int shared, rc;

	*out = NULL;
	if (n < 1 || n > KN_TP_MAX)
		return eng_error_set(err, ENG_E_INVALID, "tp", 0,
				     "tensor-parallel size %d: must be 1 to %d", n, KN_TP_MAX);
	if ((shared = shared_devices(n, devices)) < 0)
		return eng_error_set(err, ENG_E_INVALID, "tp", 0,
				     "tensor-parallel ranks must all share one GPU or each have "
				     "their own");
	for (int r = 1; shared && r < n; r++)
		if (streams[r] != streams[0])
			return eng_error_set(err, ENG_E_INVALID, "tp", 0,
					     "ranks on one GPU must share one stream");
	if (!(c = calloc(1, sizeof(*c))))
		return eng_error_set(err, ENG_E_NOMEM, "tp", 0, "out of memory");
	c->n = n;
	memcpy(c->devices, devices, (size_t)n * sizeof(int));
	memcpy(c->streams, streams, (size_t)n * sizeof(kn_stream));
	if (n > 1 && !shared && (rc = nccl_open(c, err))) {
		eng_comm_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void eng_comm_free(struct eng_comm *c)
{
	if (!c)
		return;
	for (int r = 0; c->nccl && r < c->n; r++)
		if (c->comms[r])
			c->api.destroy(c->comms[r]);
	/* the library stays loaded: NCCL keeps threads of its own */
	free(c);
}

int eng_comm_allreduce_f32(struct eng_comm *c, float *const *bufs, size_t n,
			   struct eng_error *err)
{
	int rc, r;

	if (c->n == 1 || n == 0)
		return 0;
	if (!c->nccl) {
		if ((rc = kn_set_device(c->devices[0])) ||
		    (rc = kn_tp_sum_f32(bufs, c->n, n, c->streams[0])))
			return eng_error_set(err, ENG_E_DEVICE, "tp", 0, "%s", kn_last_error());
		return 0;
	}
	if ((rc = c->api.group_start()) != NCCL_SUCCESS)
		return nccl_fail(c, rc, "ncclGroupStart", err);
	for (r = 0; r < c->n; r++)
		if ((rc = c->api.all_reduce(bufs[r], bufs[r], n, NCCL_FLOAT32, NCCL_SUM, c->comms[r],
					    c->streams[r])) != NCCL_SUCCESS)
			break;
	/* the group is closed even after a failed call */
	int rc2 = c->api.group_end();

	if (rc != NCCL_SUCCESS)
		return nccl_fail(c, rc, "ncclAllReduce", err);
	if (rc2 != NCCL_SUCCESS)
		return nccl_fail(c, rc2, "ncclGroupEnd", err);
	return 0;
}
