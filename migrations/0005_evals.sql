-- Evaluation results (pass@k, accuracy, suite grades) that trainers compute and workers report
-- with ReportEvals. One row per (run, attempt, step, task set, split, category, metric, k): a
-- re-sent report replaces its rows, so nothing is stored twice. The rules a row obeys (k <= n,
-- fractions in [0, 1], low <= value <= high) are checked in code before it gets here
-- (runspec/eval_result.h); the table only states the key.
--
-- sweep_id is copied from the run when the row is written (runs never change sweep) so that a
-- sweep's results are read through their own index, without visiting every run of the sweep.
CREATE TABLE evals (
  run_id      BIGINT NOT NULL REFERENCES runs(id),
  sweep_id    BIGINT NOT NULL,
  attempt     INT NOT NULL,
  step        BIGINT NOT NULL,
  task_set    TEXT NOT NULL,
  split       TEXT NOT NULL,
  category    TEXT NOT NULL DEFAULT '',  -- '' = the whole task set
  metric      TEXT NOT NULL,             -- 'pass@k', 'accuracy', 'grade', ...
  k           INT NOT NULL,
  n           INT NOT NULL,              -- samples per problem
  value       DOUBLE PRECISION NOT NULL,
  low         DOUBLE PRECISION,          -- interval, NULL when none was computed
  high        DOUBLE PRECISION,
  problems    BIGINT NOT NULL,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, attempt, step, task_set, split, category, metric, k)
);
-- By run: the primary key. By sweep, filtered by task set and split:
CREATE INDEX evals_sweep_idx ON evals (sweep_id, task_set, split, run_id);
