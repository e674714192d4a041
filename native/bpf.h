/*
 * BPF steering part of the addon (bpf.c): loads steering.bpf.o with libbpf,
 * attaches it to a network namespace and edits its maps. The map layouts are
 * in steering.h.
 */
#ifndef SWITCHYARD_BPF_H
#define SWITCHYARD_BPF_H

#include <node_api.h>

/*
 * Registers on `exports`:
 *   steeringLoad(objPath) -> Steering object
 *   sizeofSteerKey, sizeofSteerPortEntry, steerSocketsMax, steerPortsMax,
 *   steerCounterFields (numbers, for the facade's layout check)
 */
napi_status switchyard_init_bpf(napi_env env, napi_value exports);

#endif
