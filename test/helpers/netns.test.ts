/*
 * The lab of network namespaces (netns.ts) the replication tests run their
 * hosts in: hosts reach each other, a partition cuts a host off both ways and
 * linkUp heals it, a service address moved from one host to another answers
 * from the new one, destroy leaves nothing behind, two labs never clash, and
 * a dead process's lab is removed by the next one.
 */
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LabError, createLab, labNamespaces, labSkipReason } from './netns.ts'
import { pings, startAgent, startAgents } from './lab-tcp.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const skip = labSkipReason()
const PORT = 7070

t.test('three hosts reach each other; a partition blocks both ways; linkUp restores it', { skip: skip ?? false }, async (t) => {
  const lab = await createLab({ hosts: ['primary', 'standby', 'client'], subnet: '10.231.0.0/24' })
  t.teardown(() => lab.destroy())
  t.equal(lab.address('primary'), '10.231.0.1')
  t.equal(lab.address('client'), '10.231.0.3')
  const ag = await startAgents(lab, PORT)
  const [client, primary] = [ag.client, ag.primary]
  if (client === undefined || primary === undefined) throw new Error('agents missing')

  t.ok(await pings(lab, 'client', lab.address('primary')), 'client pings primary')
  t.ok(await pings(lab, 'primary', lab.address('standby')), 'primary pings standby')
  t.equal(await client.ask(lab.address('standby'), PORT), 'standby', 'the standby answers its name over TCP')
  t.equal(await client.ask('127.0.0.1', PORT), 'client', 'loopback is up in each host')

  await lab.linkDown('primary')
  t.notOk(await pings(lab, 'client', lab.address('primary')), 'client cannot reach the partitioned primary')
  t.match(await client.ask(lab.address('primary'), PORT, 800), /^error (ETIMEDOUT|EHOSTUNREACH)$/, 'nor connect to it')
  t.match(await primary.ask(lab.address('client'), PORT, 800), /^error (ETIMEDOUT|EHOSTUNREACH)$/, 'nor can the primary reach the client')
  t.match(await primary.ask(lab.address('standby'), PORT, 800), /^error (ETIMEDOUT|EHOSTUNREACH)$/, 'or the standby')
  t.equal(await client.ask(lab.address('standby'), PORT), 'standby', 'the others still reach each other')

  await lab.linkUp('primary')
  t.equal(await client.ask(lab.address('primary'), PORT), 'primary', 'linkUp restores client -> primary')
  t.equal(await primary.ask(lab.address('standby'), PORT), 'standby', 'and primary -> standby')
})

t.test('a service address moved from one host to another answers from the new host', { skip: skip ?? false }, async (t) => {
  const lab = await createLab({ hosts: ['a', 'b', 'client'] })
  t.teardown(() => lab.destroy())
  const { client } = await startAgents(lab, PORT)
  if (client === undefined) throw new Error('agent missing')
  const vip = lab.spareAddress(0)
  t.match(await client.ask(vip, PORT, 800), /^error (ETIMEDOUT|EHOSTUNREACH)$/, 'nobody holds the address yet')

  await lab.addAddress('a', vip)
  t.equal(await client.ask(vip, PORT), 'a', 'the address answers from a')
  await lab.removeAddress('a', vip)
  await lab.addAddress('b', vip)
  // The client's neighbour entry still names a's MAC; without a gratuitous ARP it re-learns once
  // the entry goes stale, so flush it as an announcement would (server/replication/address.ts sends one).
  await lab.exec('client', ['ip', 'neigh', 'flush', 'dev', 'eth0'])
  t.equal(await client.ask(vip, PORT), 'b', 'after the move it answers from b')
  await t.rejects(lab.removeAddress('a', vip), { code: 'LAB_EXEC_FAILED' }, 'a no longer holds it')
})

t.test('destroy kills what the lab spawned and leaves no namespace; a second destroy is a no-op', { skip: skip ?? false }, async (t) => {
  const lab = await createLab({ hosts: ['x', 'y'] })
  const sleeper = lab.spawn('x', ['sleep', '60'])
  t.equal(labNamespaces().filter((n) => n.startsWith(lab.name)).length, 3, 'two hosts and the bridge')
  const exited = once(sleeper, 'exit')
  await lab.destroy()
  await exited
  t.equal(sleeper.signalCode, 'SIGKILL', 'the spawned process was killed')
  t.strictSame(labNamespaces().filter((n) => n.startsWith(lab.name)), [], 'no namespace left')
  await lab.destroy()
  await t.rejects(lab.exec('x', ['true']), { code: 'LAB_DESTROYED' })
  t.throws(() => lab.ns('nope'), { code: 'LAB_NO_HOST' })
})

t.test('two labs at once do not clash, even on the same subnet', { skip: skip ?? false }, async (t) => {
  const [one, two] = await Promise.all([createLab({ hosts: ['a', 'b'] }), createLab({ hosts: ['a', 'b'] })])
  t.teardown(() => Promise.all([one.destroy(), two.destroy()]))
  t.not(one.name, two.name)
  const [a1, a2] = await Promise.all([startAgent(one, 'a', PORT), startAgent(two, 'a', PORT), startAgent(one, 'b', PORT), startAgent(two, 'b', PORT + 1)])
  t.equal(await a1.ask(one.address('b'), PORT), 'b', 'lab one reaches its own b')
  t.equal(await a2.ask(two.address('b'), PORT + 1), 'b', 'lab two reaches its own b')
  t.equal(await a2.ask(two.address('b'), PORT, 800), 'error ECONNREFUSED', "lab two's b is not lab one's")
  t.equal(await a2.ask(two.address('a'), PORT), 'a', 'each lab has its own a on the same address')
})

t.test("a dead process's lab is removed, with what runs in it, by the next createLab", { skip: skip ?? false }, async (t) => {
  // A pid that is surely dead: a process that has exited.
  const gone = spawn('true')
  await once(gone, 'exit')
  const stale = `tsnfs-lab-${String(gone.pid)}-0-h`
  execFileSync('ip', ['netns', 'add', stale])
  const inside = spawn('ip', ['netns', 'exec', stale, 'sleep', '60'], { stdio: 'ignore' })
  await new Promise((r) => setTimeout(r, 200))
  const killed = once(inside, 'exit')
  const lab = await createLab({ hosts: ['a'] })
  t.teardown(() => lab.destroy())
  t.notOk(labNamespaces().includes(stale), 'the stale namespace is gone')
  await killed
  t.equal(inside.signalCode, 'SIGKILL', 'its process was killed')
  t.ok(labNamespaces().includes(lab.ns('a')), 'the new lab stands')
})

t.test('the lab of a SIGKILLed process is removed by its watchdog, with no new lab needed', { skip: skip ?? false }, async (t) => {
  const script = `import { createLab } from ${JSON.stringify(join(HERE, 'netns.ts'))}
const lab = await createLab({ hosts: ['a'] })
lab.spawn('a', ['sleep', '60'])
process.stdout.write(lab.name + '\\n')
setInterval(() => {}, 1000)`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [first] = (await once(child.stdout, 'data')) as [Buffer]
  const name = first.toString().trim()
  t.match(name, /^tsnfs-lab-\d+-0$/)
  t.equal(labNamespaces().filter((n) => n.startsWith(`${name}-`) || n.startsWith(`${name}.`)).length, 2, 'its host and bridge exist')
  child.kill('SIGKILL')
  let left = 1
  for (let i = 0; i < 100 && left > 0; i++) {
    await new Promise((r) => setTimeout(r, 100))
    left = labNamespaces().filter((n) => n.startsWith(`${name}-`) || n.startsWith(`${name}.`)).length
  }
  t.equal(left, 0, 'gone within 10 s')
})

t.test('bad options are refused with exact codes', async (t) => {
  await t.rejects(createLab({ hosts: [] }), { code: 'LAB_BAD_OPTIONS' })
  await t.rejects(createLab({ hosts: ['Bad_Name'] }), { code: 'LAB_BAD_OPTIONS' })
  await t.rejects(createLab({ hosts: ['a', 'a'] }), { code: 'LAB_BAD_OPTIONS' })
  await t.rejects(createLab({ hosts: ['a'], subnet: '10.0.0.0/31' }), { code: 'LAB_BAD_OPTIONS' })
  await t.rejects(createLab({ hosts: ['a'], subnet: '300.0.0.0/24' }), { code: 'LAB_BAD_OPTIONS' })
  await t.rejects(createLab({ hosts: ['a', 'b', 'c'], subnet: '10.0.0.0/28' }), { code: 'LAB_BAD_OPTIONS' })
  t.ok(new LabError('LAB_EXEC_FAILED', 'x') instanceof Error)
})
