-- Failures (issue 9 item 4 and the fencing of item 5): lease tokens, retry state per run, the
-- evidence an attempt's failure class was decided from, worker health and quarantine.

-- Fencing: every lease gets the next token; a report must carry the run's current one.
CREATE SEQUENCE lease_tokens;
ALTER TABLE runs
  ADD COLUMN lease_token    BIGINT   NOT NULL DEFAULT 0,  -- of the current (or last) attempt
  ADD COLUMN not_before     TIMESTAMPTZ,                 -- retry backoff; NULL = now
  ADD COLUMN avoid_workers  BIGINT[] NOT NULL DEFAULT '{}',
  ADD COLUMN infra_retries  INT      NOT NULL DEFAULT 0,
  ADD COLUMN oom_retries    INT      NOT NULL DEFAULT 0,
  ADD COLUMN failure_evidence TEXT   NOT NULL DEFAULT '';  -- of the last failed attempt
ALTER TABLE run_attempts
  ADD COLUMN lease_token  BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN evidence     TEXT   NOT NULL DEFAULT '';
CREATE INDEX run_attempts_failures_idx ON run_attempts (worker_id, ended_at)
  WHERE failure_class <> '';

-- Health as the worker's last heartbeat reported it; state gains 'QUARANTINED' (no new leases).
ALTER TABLE workers
  ADD COLUMN health_ok       BOOLEAN NOT NULL DEFAULT TRUE,
  ADD COLUMN health_message  TEXT    NOT NULL DEFAULT '',
  ADD COLUMN healthy_streak  INT     NOT NULL DEFAULT 0,   -- consecutive all-ok heartbeats
  ADD COLUMN quarantined_at  TIMESTAMPTZ;

CREATE TABLE quarantine_events (
  id         BIGSERIAL PRIMARY KEY,
  worker_id  BIGINT NOT NULL REFERENCES workers(id),
  event      TEXT NOT NULL,          -- 'QUARANTINED' | 'RELEASED'
  reason     TEXT NOT NULL DEFAULT '',
  at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX quarantine_events_worker_idx ON quarantine_events (worker_id, id);
