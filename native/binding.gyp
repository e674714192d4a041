{
  "targets": [
    {
      "target_name": "switchyard",
      "sources": ["addon.c", "sockets.c", "fdpass.c", "fd_util.c", "lock.c", "tcp.c", "counters.c", "bpf.c", "bpf_errors.c", "bpf_maps.c", "bpf_handover.c", "notify.c"],
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
