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
      "target_name": "tsnfs_io",
      "sources": ["vfs/native/io.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
