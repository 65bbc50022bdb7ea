{
  "targets": [
    {
      "target_name": "tsnfs_times",
      "sources": ["vfs/local/native/times.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
