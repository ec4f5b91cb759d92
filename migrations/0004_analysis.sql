-- What the runtime reports about each run (the inputs of fits: N, D, C) and what each attempt
-- used (energy, for carbon accounting), and the fitted laws themselves.
ALTER TABLE runs
  ADD COLUMN n_params         BIGINT NOT NULL DEFAULT 0,            -- non-embedding
  ADD COLUMN n_params_total   BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN flops_per_token  DOUBLE PRECISION NOT NULL DEFAULT 0,  -- training, fwd + bwd
  ADD COLUMN tokens_trained   DOUBLE PRECISION NOT NULL DEFAULT 0,  -- D
  ADD COLUMN flops            DOUBLE PRECISION NOT NULL DEFAULT 0,  -- C
  ADD COLUMN family           TEXT NOT NULL DEFAULT '';

ALTER TABLE run_attempts
  ADD COLUMN energy_j         DOUBLE PRECISION NOT NULL DEFAULT 0,
  ADD COLUMN energy_source    TEXT NOT NULL DEFAULT '',
  ADD COLUMN device_seconds   DOUBLE PRECISION NOT NULL DEFAULT 0,
  ADD COLUMN device_kind      TEXT NOT NULL DEFAULT '',
  ADD COLUMN devices          INT NOT NULL DEFAULT 0;

-- One row per fitted law and group. A refit of the same (sweep, law, group) replaces the row.
-- `samples` holds the bootstrap parameter vectors, row-major (bootstrap x parameters in the
-- order of `param_names`), so intervals of any derived quantity (allocations for a budget a
-- caller names, efficiency multipliers) are computed on request without refitting.
CREATE TABLE fits (
  id               BIGSERIAL PRIMARY KEY,
  sweep_id         BIGINT NOT NULL REFERENCES sweeps(id),
  law              TEXT NOT NULL,
  group_key        JSONB NOT NULL DEFAULT '{}',   -- {"data.mixture.rephrased": "0.33"}
  param_names      TEXT[] NOT NULL,
  params           DOUBLE PRECISION[] NOT NULL,
  samples          DOUBLE PRECISION[] NOT NULL DEFAULT '{}',
  confidence       DOUBLE PRECISION NOT NULL,
  objective        DOUBLE PRECISION NOT NULL,
  n_points         INT NOT NULL,
  run_ids          BIGINT[] NOT NULL,
  holdout_rel_error DOUBLE PRECISION,
  message          TEXT NOT NULL DEFAULT '',
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (sweep_id, law, group_key)
);
