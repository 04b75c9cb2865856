/*
 * tp_runtime.cu: the runtime calls that ranks on several devices need
 * beyond runtime.cu: one stream waiting for an event of another (the
 * streams may belong to different devices).
 */
#include "kernels/kn_check.cuh"

extern "C" int kn_stream_wait_event(kn_stream s, kn_event e)
{
	KN_REQUIRE(e);
	KN_CHECK(cudaStreamWaitEvent(s, e, 0));
	return 0;
}
