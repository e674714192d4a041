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
 *   steeringLoad(objPath, inherited?) -> Steering object; inherited =
 *     {link?, sockets, ports, counters}: fds of another process's steering to
 *     build on (its maps, and its link to swap the program in), see bpf.c
 *   sizeofSteerKey, sizeofSteerPortEntry, steerSocketsMax, steerPortsMax,
 *   steerCounterFields (numbers, for the facade's layout check)
 */
napi_status switchyard_init_bpf(napi_env env, napi_value exports);

#endif
