-- Checkpoints and final weights of runs, reported by workers. A re-sent report (same run,
-- attempt, kind, step) is stored once. Runs may start from another run's artifact
-- (RunConfig.init), resolved at lease time from this table.
CREATE TABLE artifacts (
  id          BIGSERIAL PRIMARY KEY,
  run_id      BIGINT NOT NULL REFERENCES runs(id),
  attempt     INT NOT NULL,
  step        BIGINT NOT NULL,
  kind        TEXT NOT NULL CHECK (kind IN ('checkpoint', 'final')),
  location    TEXT NOT NULL,
  size_bytes  BIGINT NOT NULL,
  sha256      TEXT NOT NULL,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (run_id, attempt, kind, step)
);
CREATE INDEX artifacts_final_idx ON artifacts (run_id, attempt DESC) WHERE kind = 'final';
