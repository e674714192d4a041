{
  "targets": [
    {
      "target_name": "switchyard",
      "sources": ["addon.c", "sockets.c", "fdpass.c", "fd_util.c", "lock.c", "tcp.c", "counters.c", "bpf.c", "bpf_errors.c", "bpf_maps.c", "bpf_handover.c", "notify.c", "relay.c", "relay_conn.c", "relay_accept.c", "relay_dial.c", "relay_napi.c", "relay_deliver.c", "relay_pool.c", "relay_wheel.c"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes"],
      "cflags_c": ["-std=gnu11"],
      "libraries": ["-lbpf"],
      "configurations": {
        "Release": {
          "cflags!": ["-O3"],
          "cflags": ["-O2"]
        }
      }
    }
  ]
}
