/*
 * When a standby may take over on its own (--auto-takeover, issue 15 §5):
 * only when a strict majority of a configured witness set agrees the primary
 * is dead. Pure logic; quorum-probe.ts gathers the answers over the REPL
 * program.
 *
 * Why a majority: a primary cut off from this standby may still be alive and
 * serving clients on the other side of the partition. Two strict majorities
 * of one set always share a member, so if a majority answered that it does
 * not see the primary, no majority can at the same moment see it alive: the
 * standby is not the only one to believe the primary dead. The rules, each a
 * veto, in the order they are checked:
 *
 *   1. this node still sees the primary (its own heartbeat was answered):
 *      no takeover, whatever the witnesses say (QUORUM_PRIMARY_SEEN);
 *   2. any witness that answered saw the primary within the timeout
 *      (QUORUM_PRIMARY_SEEN): one live path to the primary is enough to wait;
 *   3. any witness reports an epoch above ours (QUORUM_HIGHER_EPOCH): someone
 *      has taken over already, and this node is behind;
 *   4. a standby ranked before this one answered as a live standby
 *      (QUORUM_OUTRANKED): with several standbys, only the first live one
 *      takes over (ranks are the order of the configured standby list);
 *   5. fewer than a strict majority of the configured witnesses answered
 *      (QUORUM_NO_MAJORITY): no answer is no vote. This node counts as a
 *      witness when it is configured as one (its answer is rule 1's).
 *
 * An empty witness set never agrees (QUORUM_NO_WITNESSES): automatic
 * takeover without witnesses is the split brain this exists to prevent.
 * Answers from nodes outside the set are ignored; a witness that answered
 * twice counts once, and any of its answers can veto.
 *
 * What this does not prevent: two standbys partitioned from each other, each
 * reaching its own majority of witnesses, both deciding at once (rule 4 needs
 * them to see each other). Excluding that needs witnesses that grant their vote
 * to one node per epoch, a procedure replication.x v1 does not have; until
 * then enable --auto-takeover on one standby only (deploy/replication.md).
 */

export interface WitnessAnswer {
  /** The witness's configured name. */
  witness: string
  /** It saw the primary alive (answering heartbeats) within the timeout. */
  seesPrimary: boolean
  /** The epoch it knows. */
  epoch: bigint
}

export interface TakeoverInput {
  /** The configured witness set (node names); may include this node. */
  witnesses: readonly string[]
  /** This node's name. */
  self: string
  /** The epoch this node serves or follows now; a takeover would raise it. */
  selfEpoch: bigint
  /** This node's own heartbeat to the primary was answered within the timeout. */
  selfSeesPrimary: boolean
  /** What the witnesses that answered said (not this node's own view). */
  answers: readonly WitnessAnswer[]
  /** Standbys ranked before this one that answered as live standbys. */
  outrankedBy?: readonly string[]
}

export type QuorumVeto = 'QUORUM_PRIMARY_SEEN' | 'QUORUM_HIGHER_EPOCH' | 'QUORUM_OUTRANKED' | 'QUORUM_NO_MAJORITY' | 'QUORUM_NO_WITNESSES'

export interface TakeoverDecision {
  takeover: boolean
  /** Why not; null when taking over. */
  veto: QuorumVeto | null
  /** Witnesses (counting this node when configured) that agree the primary is dead. */
  votes: number
  /** Votes a strict majority needs. */
  needed: number
  /** Who vetoed, or who voted. */
  detail: string
}

export function decideTakeover(input: TakeoverInput): TakeoverDecision {
  const set = new Set(input.witnesses)
  const needed = Math.floor(set.size / 2) + 1
  const no = (veto: QuorumVeto, votes: number, detail: string): TakeoverDecision => ({ takeover: false, veto, votes, needed, detail })
  if (set.size === 0) return no('QUORUM_NO_WITNESSES', 0, 'no witnesses are configured')

  const byWitness = new Map<string, WitnessAnswer[]>()
  for (const a of input.answers) {
    if (!set.has(a.witness) || a.witness === input.self) continue
    byWitness.set(a.witness, [...(byWitness.get(a.witness) ?? []), a])
  }
  const voters = [...byWitness.keys()]
  if (set.has(input.self)) voters.push(input.self)
  const votes = voters.length

  if (input.selfSeesPrimary) return no('QUORUM_PRIMARY_SEEN', votes, `${input.self} (this node) still sees the primary`)
  for (const [w, as] of byWitness) {
    if (as.some((a) => a.seesPrimary)) return no('QUORUM_PRIMARY_SEEN', votes, `witness ${w} still sees the primary`)
  }
  for (const [w, as] of byWitness) {
    const ahead = as.find((a) => a.epoch > input.selfEpoch)
    if (ahead !== undefined) return no('QUORUM_HIGHER_EPOCH', votes, `witness ${w} knows epoch ${String(ahead.epoch)} > ${String(input.selfEpoch)}`)
  }
  const first = input.outrankedBy?.[0]
  if (first !== undefined) return no('QUORUM_OUTRANKED', votes, `standby ${first} is ranked before ${input.self} and alive`)
  if (votes < needed) return no('QUORUM_NO_MAJORITY', votes, `${String(votes)} of ${String(set.size)} witnesses agree; ${String(needed)} needed`)
  return { takeover: true, veto: null, votes, needed, detail: `${voters.sort().join(', ')} agree the primary is dead` }
}
