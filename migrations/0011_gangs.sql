-- Gangs (issue 9 items 1 and 2): a run of several data-parallel ranks is admitted, leased and
-- ended as one attempt, but each rank holds resources on its own worker. One row per rank of a
-- gang's attempt; runs of one rank have none (their grant lives in runs.admitted_* and
-- run_attempts as before).
--
-- Rank 0's grant is also the run's (runs.admitted_worker_id, run_attempts.worker_id): rank 0
-- reports the run's metrics and outcome. The placement snapshot counts ranks > 0 from here.
CREATE TABLE run_ranks (
  run_id           BIGINT NOT NULL REFERENCES runs(id),
  attempt          INT NOT NULL,             -- the attempt the grant is for (runs.attempt once leased)
  rank             INT NOT NULL CHECK (rank >= 0),
  worker_id        BIGINT NOT NULL REFERENCES workers(id),
  gpu_indices      INT[] NOT NULL DEFAULT '{}',
  cpu_slots        INT NOT NULL CHECK (cpu_slots >= 0),
  -- 'ADMITTED' (granted, its worker has not leased it yet), 'LEASED' (its worker runs it),
  -- 'SUCCEEDED' | 'FAILED' (the rank ended so), 'STOPPED' (the attempt ended first).
  state            TEXT NOT NULL,
  -- Renewed by the rank's worker's heartbeats; runs.lease_expires_at is the earliest over the
  -- ranks, so the reaper sees a gang as lost when any one rank's worker went silent.
  lease_expires_at TIMESTAMPTZ,
  leased_at        TIMESTAMPTZ,
  ended_at         TIMESTAMPTZ,
  exit_code        INT,
  message          TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, attempt, rank)
);
-- LeaseAdmitted looks for the ranks admitted to one worker; the snapshot for the holds.
CREATE INDEX run_ranks_holding_idx ON run_ranks (worker_id, run_id)
  WHERE state IN ('ADMITTED', 'LEASED');
