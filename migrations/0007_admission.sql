-- Admission (issue 9): priority classes, per-project GPU quotas and fair-share weights, and the
-- scheduling cycle's decisions, written before anyone acts on them.

-- A project's most GPUs held at once (0 = no quota) and its fair-share weight.
ALTER TABLE projects
  ADD COLUMN gpu_quota INT NOT NULL DEFAULT 0 CHECK (gpu_quota >= 0),
  ADD COLUMN weight    DOUBLE PRECISION NOT NULL DEFAULT 1 CHECK (weight > 0);

-- SweepSpec.priority: 'low' | 'normal' | 'high' | 'critical'.
ALTER TABLE sweeps
  ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal'
    CHECK (priority IN ('low', 'normal', 'high', 'critical'));

-- An ADMITTED run's placement: the worker it is admitted to, the GPUs and CPU slots held there,
-- and when. LeaseRuns of that worker turns it into an attempt; an admission not leased in time
-- goes back to PENDING. Cleared when the run leaves ADMITTED.
ALTER TABLE runs
  ADD COLUMN admitted_worker_id   BIGINT REFERENCES workers(id),
  ADD COLUMN admitted_gpu_indices INT[],
  ADD COLUMN admitted_cpu_slots   INT,
  ADD COLUMN admitted_at          TIMESTAMPTZ;
CREATE INDEX runs_admitted_idx ON runs (admitted_worker_id, id) WHERE state = 'ADMITTED';
