/* vpq_demo.h — the closed-loop demo: embedded broker + simulator + engine (vpq_demo.c). */
#ifndef VPQ_DEMO_H
#define VPQ_DEMO_H

#include <stdio.h>

#include "vpq.h"

/* Runs a loaded engine whose file uses Kafka against an embedded broker and the simulator,
 * with a live summary on stdout. `sets` are the run's --set key=value strings (the sim.*
 * ones configure the simulator). Returns the process exit code. */
int vpq_demo_run(vpq_engine *engine, const char *const *sets, int nsets, FILE *log);

#endif
