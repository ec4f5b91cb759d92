-- Adaptive search (issue 9): a search sweep's runs are made as results arrive. The sweep keeps
-- the search's progress: search_generation counts the steps taken (each step's runs are stored,
-- and the counter moved, in one transaction, so a restarted scheduler never makes a step twice);
-- search_open is true while the search may still make runs (a sweep whose runs all ended stays
-- RUNNING while it is). search_nodes records the tree: which runs each run came from, by which
-- operator, and what the policy saw. search_skipped keeps the configs a step generated that failed
-- validation: never stored as runs, but not forgotten.
ALTER TABLE sweeps
  ADD COLUMN search_generation INT NOT NULL DEFAULT 0,
  ADD COLUMN search_open BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE search_nodes (
  run_id          BIGINT PRIMARY KEY REFERENCES runs(id),
  sweep_id        BIGINT NOT NULL REFERENCES sweeps(id),
  parent_run_ids  BIGINT[] NOT NULL DEFAULT '{}',
  operator        TEXT NOT NULL,              -- 'draft' | 'perturb' | 'scale' | 'crossover' ...
  generation      INT NOT NULL,               -- 0 = made at submission
  policy_state    JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX search_nodes_sweep_idx ON search_nodes (sweep_id, run_id);

CREATE TABLE search_skipped (
  id              BIGSERIAL PRIMARY KEY,
  sweep_id        BIGINT NOT NULL REFERENCES sweeps(id),
  generation      INT NOT NULL,
  parent_run_ids  BIGINT[] NOT NULL DEFAULT '{}',
  operator        TEXT NOT NULL,
  point           JSONB NOT NULL,             -- the generated key -> value map
  reason          TEXT NOT NULL,              -- the validation error
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX search_skipped_sweep_idx ON search_skipped (sweep_id);

-- The search loop's cheap poll: the open searches.
CREATE INDEX sweeps_search_open_idx ON sweeps (id) WHERE search_open;
