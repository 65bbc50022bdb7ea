/*
 * tsnfs: the commands by name, and the usage. cli/main.ts runs one command
 * per process; the tests' batch runner (test/cli/cli-batch.ts) runs many in one.
 */

import { packageVersion } from './help.ts'

/** Each command is loaded only when it runs: the CLI starts in a fraction of the time of loading them all. */
const COMMANDS: Readonly<Record<string, (argv: string[]) => Promise<number>>> = {
  serve: (a) => import('./serve.ts').then((m) => m.serve(a)),
  bench: (a) => import('./bench.ts').then((m) => m.bench(a)),
  showmount: (a) => import('./showmount.ts').then((m) => m.showmount(a)),
  exports: (a) => import('./exports.ts').then((m) => m.exportsCommand(a)),
  stats: (a) => import('./stats.ts').then((m) => m.stats(a)),
  ls: (a) => import('./ls.ts').then((m) => m.ls(a)),
  cat: (a) => import('./cat.ts').then((m) => m.cat(a)),
  cp: (a) => import('./cp.ts').then((m) => m.cp(a)),
  stat: (a) => import('./stat.ts').then((m) => m.stat(a)),
  mkdir: (a) => import('./mkdir.ts').then((m) => m.mkdir(a)),
  rm: (a) => import('./rm.ts').then((m) => m.rm(a)),
  mv: (a) => import('./mv.ts').then((m) => m.mv(a)),
  ln: (a) => import('./ln.ts').then((m) => m.ln(a)),
  df: (a) => import('./df.ts').then((m) => m.df(a)),
  shell: (a) => import('./shell.ts').then((m) => m.shell(a)),
  mount: (a) => import('./mount.ts').then((m) => m.mount(a)),
  umount: (a) => import('./umount.ts').then((m) => m.umount(a)),
  debug: (a) => import('./debug.ts').then((m) => m.debug(a)),
  mkfs: (a) => import('./mkfs.ts').then((m) => m.mkfs(a)),
  fsck: (a) => import('./fsck.ts').then((m) => m.fsck(a)),
  volume: (a) => import('./volume.ts').then((m) => m.volume(a)),
  resize: (a) => import('./resize.ts').then((m) => m.resize(a)),
  replication: (a) => import('./replication.ts').then((m) => m.replication(a)),
  standby: (a) => import('./standby.ts').then((m) => m.standby(a)),
  witness: (a) => import('./witness.ts').then((m) => m.witness(a)),
  restore: (a) => import('./restore.ts').then((m) => m.restore(a)),
  backup: (a) => import('./backup.ts').then((m) => m.backup(a)),
  cluster: (a) => import('./cluster.ts').then((m) => m.cluster(a)),
}

const USAGE = `usage: tsnfs <command> [options]

commands:
  serve [--exports FILE] [--port N] [--host ADDR] [--state-dir DIR] [--portmap [PORT]] [--log-level LEVEL]
        serve NFSv3, MOUNT and PORTMAP on TCP and UDP port N (default 2049); without --exports,
        one read-write in-memory export /export open to any client
        [--metrics HOST:PORT] Prometheus text on http://HOST:PORT/metrics
        [--rpcbind | --no-rpcbind] register with the system rpcbind on 111 (default: when one
        answers, the port is not 0 and --portmap is not 111); unregistered on exit
        limits: [--max-connections N (4096)] [--max-connections-per-client N (256)]
        [--max-requests N (512 in flight in all)] [--max-requests-per-connection N (64)]
        [--max-record-size BYTES] [--idle-timeout S (300; 0 off)] [--record-timeout S (30; 0 off)]
        memory (sizes in bytes, or with K, M, G): [--record-pool SIZE (48M)] [--chunk-pool SIZE (256M)]
        [--read-pool SIZE (32M)] [--drc-bytes SIZE (16M)] [--memory-idle S (30; 0 off)] [--no-idle-gc] [--heap-budget SIZE|off (off)]
        [--heap-growth PERCENT|off (50): V8's old generation at most this far past what is live]
  showmount [-e | -a | -d] [--port N] HOST[:PORT]
        the export list (-e), mount points (-a), directories (-d) or hosts of an NFS server
  exports --check FILE
        validate an export list without serving it (exit 0 or 1)
  stats [--metrics HOST:PORT]
        print the counters of a server started with --metrics (default 127.0.0.1:9049)
  bench [WORKLOAD...] [--target T | --url URL] [--compare URL_A URL_B] [--json]
        benchmarks: meta, seq, rand, small, mixed (see bench/README.md)

client commands (URL: nfs://host[:port]/export/path?nfsport=N&mountport=N&uid=N&gid=N&proto=tcp|udp):
  ls [-l] [-a] [-R] URL...          list directories (-l: mode, links, uid, gid, size, mtime)
  cat URL...                        print files
  cp [-r] [-p] SRC... DST           copy; each side a URL or a local path (progress bar on a terminal)
  stat [-L] URL...                  all attributes (fileid, fsid, times with ns)
  mkdir [-p] [-m MODE] URL...       create directories
  rm [-r] [-f] URL...               remove files or trees
  mv SRC-URL DST-URL                rename inside one export
  ln [-s] TARGET LINK-URL           hard link (TARGET a URL of the same export) or symlink (-s: TARGET is its text)
  df [-h] URL...                    space and files of the export
  shell URL                         interactive shell (cd, ls, get, put, cat, ...; type help)

mounting (as root, through FUSE; SOURCE is host:/export[/path] or a URL):
  mount [-f] [-o OPTIONS] SOURCE DIR  mount the export on DIR (nfs(5) options: ro, rsize, wsize,
                                    actimeo, noac, port, mountport, proto, uid, gid, soft, allow_other...)
  umount [-l] DIR                   unmount (never stats a mount) and wait for the daemon to finish

storage engine images (ext4; read only, nothing is served or mounted):
  debug IMAGE ls [-l] PATH | stat PATH | cat PATH
                                    list a directory, show an inode, print a file of the image
  mkfs IMAGE [--size SIZE] [--block-size 4096|1024] [--label L] [--force] ...
                                    make an ext4 file system (a new sparse image, or a file or device)
  fsck IMAGE [--json]               check the image read only, as e2fsck -fn (exit 0 clean, 4 problems, 8 error)
  resize IMAGE [SIZE] | resize --volume DISK... [--size SIZE]   grow the file system to SIZE or its device

volumes (several disks under one engine export; offline, on disks no server has open):
  volume create NAME --level span|stripe|mirror|raid5 [--unit SIZE] [--size SIZE] [--force] DISK...
  volume mkfs DISK... [--block-size 4096|1024] [--label L] [--force]   an ext4 file system on the volume
  volume status [--json] DISK...    members and state (exit 1 when degraded)
  volume export DISK... --to FILE   the volume's bytes as one sparse image, for e2fsck
  volume scrub [--repair] DISK...   compare mirror legs and RAID-5 parity
  volume grow DISK... [--add NEWDISK...] [--size max|SIZE]   more disks (span; stripe, raid5: a reshape) or larger members
  volume fail DISK... --member N | volume replace DISK... --member N --new NEWDISK [--rate B/s]

replication (a primary and its standby nodes):
  serve ... --standby HOST:PORT [--sync|--async [--lag MS]]   replicate every export to a standby
  standby --listen HOST:PORT --exports FILE --state-dir DIR --port NFSPORT
        keep a primary's exports in step here; serve them over NFS after a takeover
        [--auto-takeover --primary NAME=HOST:PORT --witness NAME=HOST:PORT...]
  witness --listen HOST:PORT --primary NAME=HOST:PORT   a data-less third node for --auto-takeover
  replication status HOST:PORT [--json]        a node's role, epoch, positions and peers
  replication takeover HOST:PORT [--force]     tell a standby to become the primary

backup (issue 16: NDMP service in serve --ndmp; our manager; the catalog):
  restore --catalog DB --fs EXPORT [--date T] [--script FILE] [--tapes DIR]   browse the catalog at a
        date (ls, cd, search, versions, add, del, show, restore: with --tapes, from DIR/LABEL.tape on this
        host); one-shot: --list PATH | --search PAT | --plan PATH... | --backups [--json]
  serve ... --backup-schedule FILE [--backup-state DIR]   run the scheduled backups in the server
  backup run EXPORT --level N --to POOL | list | abort JOB | continue JOB | log [--level N] | label POOL LABEL
scale-out (issue 17: one tree served by many servers, metadata in PostgreSQL, data in S3 or PostgreSQL):
  serve with an export line *(rw,backend=cluster,meta=postgres://user@host/db,data=s3://bucket?endpoint=URL)
  cluster init|status|gc|fsck --meta URL --data URL|postgres [--credentials FILE]
        create the schema and bucket; show servers and sessions; collect unreferenced blocks
        ([--dry-run] [--min-age 1h]); check references both ways (exit 1 on problems)
  (tsnfs <command> --help, or tsnfs help <command>, for each command's options; tsnfs --version)
`

/** `tsnfs ...argv` without the process around it: the exit code it should end with. */
export async function dispatch(argv: string[]): Promise<number> {
  const [first, ...args] = argv
  if (first === '-V' || first === '--version') {
    process.stdout.write(`tsnfs ${packageVersion()}\n`)
    return 0
  }
  // `tsnfs help CMD` is `tsnfs CMD --help`.
  const [name, rest] = first === 'help' && args[0] !== undefined ? [args[0], ['--help']] : [first, args]
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(USAGE)
    return name === undefined ? 2 : 0
  }
  const command = COMMANDS[name]
  if (command === undefined) {
    process.stderr.write(`tsnfs: unknown command "${name}"\n${USAGE}`)
    return 2
  }
  return command(rest)
}

/** dispatch(), with a failure reported as main.ts always has: "tsnfs: message" on stderr, exit 1. */
export function tsnfs(argv: string[]): Promise<number> {
  return dispatch(argv).catch((err: unknown) => {
    process.stderr.write(`tsnfs: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  })
}
