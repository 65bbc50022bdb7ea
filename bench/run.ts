/* npm run bench: the micro benchmarks (a table on stdout, JSON lines on stderr). */
import { printTable } from './harness.ts'
import { xdrBenches } from './xdr.bench.ts'

printTable(xdrBenches())
