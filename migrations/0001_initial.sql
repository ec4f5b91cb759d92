-- ScaleLab results store, first schema. Forward-only: later changes go in new numbered files.
-- States are stored as their proto names without prefix ('PENDING', 'RUNNING', ...).

CREATE TABLE projects (
  id          BIGSERIAL PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE sweeps (
  id               BIGSERIAL PRIMARY KEY,
  project_id       BIGINT NOT NULL REFERENCES projects(id),
  name             TEXT NOT NULL,
  kind             TEXT NOT NULL,
  state            TEXT NOT NULL,
  spec             JSONB NOT NULL,          -- SweepSpec as proto JSON
  manifest         TEXT NOT NULL DEFAULT '', -- the submitted YAML, verbatim
  idempotency_key  TEXT UNIQUE,             -- NULL when the client gave none
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE workers (
  id                 BIGSERIAL PRIMARY KEY,
  name               TEXT NOT NULL,
  hostname           TEXT NOT NULL,
  cpu_slots          INT NOT NULL,
  gpus               INT NOT NULL,
  inventory          JSONB NOT NULL,        -- RegisterRequest as proto JSON
  state              TEXT NOT NULL,         -- 'ALIVE' | 'LOST'
  registered_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_heartbeat_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE runs (
  id                BIGSERIAL PRIMARY KEY,
  sweep_id          BIGINT NOT NULL REFERENCES sweeps(id),
  run_index         INT NOT NULL,
  state             TEXT NOT NULL,
  config            JSONB NOT NULL,         -- RunConfig as proto JSON
  overrides         JSONB NOT NULL,         -- {"model.d_model": "64", ...}
  attempt           INT NOT NULL DEFAULT 0, -- attempts started
  max_attempts      INT NOT NULL,
  worker_id         BIGINT REFERENCES workers(id),
  lease_expires_at  TIMESTAMPTZ,
  step              BIGINT NOT NULL DEFAULT 0,
  tokens            DOUBLE PRECISION NOT NULL DEFAULT 0,
  train_loss        DOUBLE PRECISION,
  val_loss          DOUBLE PRECISION,
  exit_code         INT NOT NULL DEFAULT 0,
  failure_class     TEXT NOT NULL DEFAULT '',
  message           TEXT NOT NULL DEFAULT '',
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (sweep_id, run_index)
);
CREATE INDEX runs_state_idx ON runs (state, sweep_id, run_index);
CREATE INDEX runs_worker_idx ON runs (worker_id) WHERE worker_id IS NOT NULL;

CREATE TABLE run_attempts (
  run_id         BIGINT NOT NULL REFERENCES runs(id),
  attempt        INT NOT NULL,
  worker_id      BIGINT NOT NULL REFERENCES workers(id),
  state          TEXT NOT NULL,
  started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
  ended_at       TIMESTAMPTZ,
  exit_code      INT,
  term_signal    INT,
  failure_class  TEXT NOT NULL DEFAULT '',
  message        TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, attempt)
);

-- Every state change of a run, written in the same transaction as the change itself.
CREATE TABLE run_transitions (
  id          BIGSERIAL PRIMARY KEY,
  run_id      BIGINT NOT NULL REFERENCES runs(id),
  attempt     INT NOT NULL,
  from_state  TEXT NOT NULL,
  to_state    TEXT NOT NULL,
  reason      TEXT NOT NULL DEFAULT '',
  at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX run_transitions_run_idx ON run_transitions (run_id, id);

-- Keyed so that a re-sent batch is stored once.
CREATE TABLE metric_points (
  run_id       BIGINT NOT NULL REFERENCES runs(id),
  attempt      INT NOT NULL,
  step         BIGINT NOT NULL,
  name         TEXT NOT NULL,
  value        DOUBLE PRECISION NOT NULL,
  tokens       DOUBLE PRECISION NOT NULL,
  wall_time_s  DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (run_id, attempt, step, name)
);
