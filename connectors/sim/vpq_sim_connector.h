/* vpq_sim_connector.h — `connector = 'sim'`: the simulator as a source (telemetry, meters) and a
 * sink (dispatch) inside the engine (vpq_sim_connector.c). */
#ifndef VPQ_SIM_CONNECTOR_H
#define VPQ_SIM_CONNECTOR_H

#include "../vpq_connector.h"

/* Opens a source of the simulated fleet's `stream` ('telemetry' or 'meters'); NULL + err. */
vpq_source *vpq_sim_open_source(const vpq_relation *rel, vpq_intern *intern, vpq_bad_record_fn bad, void *bad_ctx,
                                char *err, size_t err_size);

/* Opens the fleet's dispatch input (`stream = 'dispatch'`): each row's setpoint_kw goes to its
 * device_id for the 15-minute step starting at its ts. NULL + err. */
vpq_sink *vpq_sim_open_sink(const vpq_plan_connector *conn, const vpq_schema *schema, const vpq_intern *intern,
                            char *err, size_t err_size);

#endif
