/**
 * Schema v1 of the shared PostgreSQL spool (SPEC 9). `s` is the configured schema, already
 * validated and quoted. Times are `timestamptz` set from the database's clock (`now()`),
 * never from a node's. DESIGN.md beside this file says how each statement uses it.
 */
export function schemaV1(s: string): string {
  return `
-- One row per accepted message: the envelope and the message state (derived from its
-- deliveries, kept here so lists and stats need no join).
CREATE TABLE ${s}.messages (
  id           text PRIMARY KEY,                 -- queue id (15 chars, sorts by arrival)
  sender       text NOT NULL,                    -- '' is the null sender
  recipients   text[] NOT NULL,
  message_id   text,                             -- Message-ID without angle brackets
  size         integer NOT NULL,
  client       jsonb NOT NULL,                   -- ClientInfo
  state        text NOT NULL CHECK (state IN ('queued','deferred','held','delivered','bounced','deleted')),
  dedup_key    text,
  bounce_of    text,
  accepted_by  text NOT NULL,                    -- node id
  received_at  timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  CHECK ((finished_at IS NULL) = (state IN ('queued','deferred','held')))
);
-- Unfinished messages in arrival order: spool list, the oldest age, maxQueued.
CREATE INDEX messages_unfinished ON ${s}.messages (received_at, id) WHERE finished_at IS NULL;
-- Retention: the janitor deletes finished messages older than retainFinished.
CREATE INDEX messages_finished ON ${s}.messages (finished_at) WHERE finished_at IS NOT NULL;

-- Bodies apart from the envelope: a 25 MB body never rides along when a message row is
-- read or rewritten. Deleted when the message is finished.
CREATE TABLE ${s}.bodies (
  queue_id text PRIMARY KEY REFERENCES ${s}.messages (id) ON DELETE CASCADE,
  body     bytea NOT NULL
);

-- The queue proper: one row per routed target list. The hot table (claimed, renewed,
-- completed), so its rows stay small: attempts go to their own append-only table.
CREATE TABLE ${s}.deliveries (
  id               text PRIMARY KEY,             -- <queueId>.<n>, the downstream Idempotency-Key
  queue_id         text NOT NULL REFERENCES ${s}.messages (id) ON DELETE CASCADE,
  lane             text NOT NULL,                -- the failover list joined by '+'
  targets          text[] NOT NULL,
  state            text NOT NULL CHECK (state IN ('queued','deferred','held','delivered','failed')),
  due_at           timestamptz,                  -- next attempt while queued/deferred
  attempt_count    integer NOT NULL DEFAULT 0,   -- attempts started (a claim counts one)
  lease_owner      text,                         -- node id while an attempt runs
  lease_epoch      bigint NOT NULL DEFAULT 0,    -- +1 per claim: guards every outcome write
  lease_expires_at timestamptz,
  recipients       jsonb NOT NULL,               -- RecipientRecord[]
  delay_warned     boolean NOT NULL DEFAULT false,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
) WITH (
  -- Room on each page so an update can stay on it (HOT: no new index entries). Lease
  -- renewals touch only lease_expires_at, which no index covers, so they are always HOT.
  fillfactor = 70,
  -- A queue table churns: every row is updated a few times and then its message deleted.
  -- The default (vacuum at 20 % dead rows) lets a million-row backlog carry 200 k dead
  -- tuples that every claim's index scan wades through; vacuum early and without sleeping.
  autovacuum_vacuum_scale_factor = 0.02,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_cost_delay = 0
);
-- Due work per lane in time order; leased rows leave it, so claims never see them.
CREATE INDEX deliveries_due ON ${s}.deliveries (lane, due_at)
  WHERE state IN ('queued','deferred') AND lease_owner IS NULL;
-- Leases: the few rows in flight, for takeover of expired ones. Keyed on the owner, not the
-- expiry, so that renewals (which move the expiry) stay HOT updates.
CREATE INDEX deliveries_leased ON ${s}.deliveries (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX deliveries_queue ON ${s}.deliveries (queue_id);

-- Attempts, appended once each and never rewritten; deleted with their message.
CREATE TABLE ${s}.attempts (
  delivery_id text NOT NULL REFERENCES ${s}.deliveries (id) ON DELETE CASCADE,
  n           integer NOT NULL,                  -- 1-based, per delivery
  lease_epoch bigint NOT NULL,                   -- the claim this attempt ran under
  node        text NOT NULL,
  at          timestamptz NOT NULL,
  target      text NOT NULL,
  outcome     text NOT NULL,
  reply       text NOT NULL,
  duration_ms integer NOT NULL,
  PRIMARY KEY (delivery_id, n)
);

-- Dedup keys (sha256 of identity + sender + Message-ID + recipients), inserted in the accept
-- transaction with ON CONFLICT: two nodes accepting the same message end with one.
CREATE TABLE ${s}.dedup_keys (
  key        text PRIMARY KEY,
  queue_id   text NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX dedup_keys_expiry ON ${s}.dedup_keys (expires_at);

-- The nodes of the cluster: heartbeat in last_seen_at (spool nodes, live counts).
CREATE TABLE ${s}.nodes (
  id           text PRIMARY KEY,
  host         text NOT NULL,
  pid          integer NOT NULL,
  version      text NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  targets      jsonb NOT NULL DEFAULT '{}'       -- per-target up/concurrency as this node sees it
);
`;
}
