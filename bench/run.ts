/* The micro benchmarks alone (a table on stdout, JSON lines on stderr); `tsnfs bench micro` runs the same. */
import { printTable } from './harness.ts'
import { microBenches } from './micro.ts'

printTable(await microBenches())
