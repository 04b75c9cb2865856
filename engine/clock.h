/*
 * clock.h: the engine's one clock: monotonic seconds, for time stamps,
 * durations and deadlines (never wall-clock dates).
 */
#ifndef TRAJBENCH_ENG_CLOCK_H
#define TRAJBENCH_ENG_CLOCK_H

#include <time.h>

static inline double eng_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
