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

t.test('three hosts reach each other; a partition blocks both ways; linkUp restores it; an address moves', { skip: skip ?? false }, async (t) => {
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

  // The service address: on the primary, then moved to the standby.
  const vip = lab.spareAddress(0)
  t.match(await client.ask(vip, PORT, 800), /^error (ETIMEDOUT|EHOSTUNREACH)$/, 'nobody holds the service address yet')
  await lab.addAddress('primary', vip)
  t.equal(await client.ask(vip, PORT), 'primary', 'it answers from the primary')
  await lab.removeAddress('primary', vip)
  await lab.addAddress('standby', vip)
  // The client's neighbour entry still names the primary's MAC; without a gratuitous ARP it
  // re-learns once the entry goes stale, so flush it as an announcement would
  // (server/replication/address.ts sends one; test/server/replication/address.test.ts shows it).
  await lab.exec('client', ['ip', 'neigh', 'flush', 'dev', 'eth0'])
  t.equal(await client.ask(vip, PORT), 'standby', 'after the move it answers from the standby')
  await t.rejects(lab.removeAddress('primary', vip), { code: 'LAB_EXEC_FAILED' }, 'the primary no longer holds it')
})

t.test('two labs at once do not clash, even on the same subnet; destroying one leaves the other', { skip: skip ?? false }, async (t) => {
  const [one, two] = await Promise.all([createLab({ hosts: ['a', 'b'] }), createLab({ hosts: ['a', 'b'] })])
  t.teardown(() => two.destroy())
  t.not(one.name, two.name)
  const [a1, a2] = await Promise.all([startAgent(one, 'a', PORT), startAgent(two, 'a', PORT), startAgent(one, 'b', PORT), startAgent(two, 'b', PORT + 1)])
  t.equal(await a1.ask(one.address('b'), PORT), 'b', 'lab one reaches its own b')
  t.equal(await a2.ask(two.address('b'), PORT + 1), 'b', 'lab two reaches its own b')
  t.equal(await a2.ask(two.address('b'), PORT, 800), 'error ECONNREFUSED', "lab two's b is not lab one's")
  t.equal(await a2.ask(two.address('a'), PORT), 'a', 'each lab has its own a on the same address')

  const sleeper = one.spawn('a', ['sleep', '60'])
  t.equal(labNamespaces().filter((n) => n.startsWith(`${one.name}-`) || n.startsWith(`${one.name}.`)).length, 3, 'two hosts and the bridge')
  const exited = once(sleeper, 'exit')
  await one.destroy()
  await exited
  t.equal(sleeper.signalCode, 'SIGKILL', "destroy killed what the lab spawned")
  t.strictSame(labNamespaces().filter((n) => n.startsWith(`${one.name}-`) || n.startsWith(`${one.name}.`)), [], 'and left no namespace')
  await one.destroy()
  await t.rejects(one.exec('a', ['true']), { code: 'LAB_DESTROYED' }, 'a second destroy is a no-op; the lab is unusable')
  t.throws(() => two.ns('nope'), { code: 'LAB_NO_HOST' })
  t.equal(await a2.ask(two.address('b'), PORT + 1), 'b', 'the other lab still works')
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
