{
  "targets": [
    {
      "target_name": "tsnfs_times",
      "sources": ["vfs/local/native/times.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "tsnfs_fuse",
      "sources": ["client/fuse/native/poll.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "tsnfs_engine",
      "sources": ["vfs/engine/native/engine.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
