/* vpq_demo.h — the closed-loop demo: embedded broker + simulator + engine (vpq_demo.c). */
#ifndef VPQ_DEMO_H
#define VPQ_DEMO_H

#include <stdio.h>

#include "vpq.h"

typedef struct vpq_demo vpq_demo;

/* Prepares a loaded engine whose file uses Kafka to run against an embedded broker and the
 * simulator (started on its own thread), with a live summary on stdout. `sets` are the run's
 * --set key=value strings (the sim.* ones configure the simulator). NULL on error, with the
 * exit code in *rc. Then: vpq_engine_run, vpq_demo_stop, free the engine, vpq_demo_finish
 * (the engine's Kafka clients must be closed before the broker stops). */
vpq_demo *vpq_demo_start(vpq_engine *engine, const char *const *sets, int nsets, FILE *log, int *rc);

/* Stops the simulator and waits for its thread (after vpq_engine_run returned). */
void vpq_demo_stop(vpq_demo *demo);

/* Prints the final report, stops the broker and frees the demo; returns 0, or 1 when the
 * simulator failed. */
int vpq_demo_finish(vpq_demo *demo, FILE *log);

#endif
