-- Control plane (issue 9): one acting scheduler per database, change notifications, and indexes
-- that let the per-second loops read only what they act on.

-- The leader lease. One row; `holder` names the scheduler process that acts (reaper, fitter,
-- background loops), `epoch` grows by one at each change of holder and fences the leader's
-- writes (a deposed leader's transaction checks it and rolls back), `expires_at` is renewed by
-- the holder about every second. Times are the database's, so schedulers need no common clock.
CREATE TABLE scheduler_leader (
  id          INT PRIMARY KEY CHECK (id = 1),
  holder      TEXT NOT NULL,
  epoch       BIGINT NOT NULL,
  acquired_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at  TIMESTAMPTZ NOT NULL
);

-- The reaper asks for leases that expired; this index holds only runs that have a lease, so the
-- query reads the expired ones and nothing else (EXPLAIN: Index Scan using runs_lease_expiry_idx).
CREATE INDEX runs_lease_expiry_idx ON runs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
-- Workers declared lost: only ALIVE ones are candidates.
CREATE INDEX workers_alive_heartbeat_idx ON workers (last_heartbeat_at) WHERE state = 'ALIVE';

-- Every run state change NOTIFYs channel scalelab_runs in the transaction that makes it (a
-- notification is delivered only if that transaction commits). Payload: "<sweep_id> <to_state>",
-- one per distinct pair in the statement; PostgreSQL also folds equal payloads of a transaction.
CREATE FUNCTION scalelab_notify_run_transitions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  change RECORD;
BEGIN
  FOR change IN
    SELECT DISTINCT r.sweep_id, t.to_state FROM new_transitions t JOIN runs r ON r.id = t.run_id
  LOOP
    PERFORM pg_notify('scalelab_runs', change.sweep_id || ' ' || change.to_state);
  END LOOP;
  RETURN NULL;
END;
$$;
CREATE TRIGGER run_transitions_notify AFTER INSERT ON run_transitions
  REFERENCING NEW TABLE AS new_transitions
  FOR EACH STATEMENT EXECUTE FUNCTION scalelab_notify_run_transitions();
