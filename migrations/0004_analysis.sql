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

-- Series are read one metric of one attempt at a time, in step order (a run's curve, a sweep's
-- curves for fits and plots), while points arrive one step with many names at a time. Keyed by
-- name before step, the same primary key serves both, with no second index on the ingest path:
-- a sweep's val_loss curves no longer scan every train_loss point of its runs.
--
-- The foreign key to runs goes: its check is a trigger and a row lock per inserted point, about
-- twice the cost of the insert itself, and it guards nothing the store does not already
-- guarantee: points are only written by ReportMetrics, for the run it has just locked, and runs
-- are never deleted.
ALTER TABLE metric_points
  DROP CONSTRAINT metric_points_pkey,
  ADD CONSTRAINT metric_points_pkey PRIMARY KEY (run_id, attempt, name, step),
  DROP CONSTRAINT metric_points_run_id_fkey;

-- The run config again, as binary protobuf (RunConfig), written with `config` and never changed:
-- decoding proto JSON costs about 100 times more, which dominated reading a sweep of 10,000 runs
-- (its curves, its pages). `config` stays what SQL reads (init.from_run). NULL for runs stored
-- before this migration; readers then decode `config`.
ALTER TABLE runs ADD COLUMN config_pb BYTEA;
