-- Preemption (issue 9): a higher-priority run evicts lower-priority ones. One row per victim
-- attempt, written in the transaction that admits the preemptor onto the victims' worker
-- (Store::RequestPreemptions). While a row is 'requested' and its victim attempt is LEASED or
-- RUNNING, the victim's worker is told to stop it (HeartbeatResponse.preempt) and the preemptor
-- is not leased; the row becomes 'done' once the attempt has ended (victim_ended_at), whatever
-- ended it (the trainer's checkpoint and exit 7, the grace period's SIGKILL, a lost worker).
CREATE TABLE preemptions (
  id               BIGSERIAL PRIMARY KEY,
  preemptor_run_id BIGINT NOT NULL REFERENCES runs(id),
  victim_run_id    BIGINT NOT NULL REFERENCES runs(id),
  victim_attempt   INT NOT NULL,
  worker_id        BIGINT NOT NULL REFERENCES workers(id),
  reason           TEXT NOT NULL,
  requested_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
  victim_ended_at  TIMESTAMPTZ,
  state            TEXT NOT NULL DEFAULT 'requested' CHECK (state IN ('requested', 'done')),
  UNIQUE (victim_run_id, victim_attempt)
);
-- The in-flight ones: heartbeats, lease gating and the placement snapshot read only these.
CREATE INDEX preemptions_in_flight_idx ON preemptions (worker_id) WHERE state = 'requested';
CREATE INDEX preemptions_preemptor_idx ON preemptions (preemptor_run_id) WHERE state = 'requested';
-- The cool-down: when was a run last chosen as a victim.
CREATE INDEX preemptions_victim_idx ON preemptions (victim_run_id, requested_at);
