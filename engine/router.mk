## engine/: the router's routing policies and approximate radix trees.
engine_libengine_a_SOURCES += \
	engine/route.h engine/route_policy.c \
	engine/route_tree.h engine/route_tree.c \
	engine/policy_cache_aware.c engine/policy_round_robin.c engine/policy_random.c \
	engine/policy_shortest_queue.c engine/policy_power_of_two.c

check_PROGRAMS += tests/test-route
tests_test_route_SOURCES = tests/test-route.c
tests_test_route_LDADD = $(ENGINE_LIBS)
TESTS += tests/test-route

engine_libengine_a_SOURCES += engine/router.h engine/router_int.h engine/router.c engine/router_health.c \
	engine/router_setup.c engine/router_sock.c engine/router_http.c \
	engine/router_record.c

check_PROGRAMS += tests/test-router
tests_test_router_SOURCES = tests/test-router.c
tests_test_router_LDADD = $(ENGINE_LIBS) -lm -lpthread
TESTS += tests/test-router

# the router end to end through gpu-batch-infer, three tiny-model workers
TESTS += tests/gpu-batch-infer-router.test
EXTRA_DIST += tests/gpu-batch-infer-router.test
