-- Scale (issue 9, "Speed and scale"): what storing 100,000 runs in one submission cost beyond the
-- rows themselves.

-- The foreign key from run_transitions to runs goes, as metric_points' did in 0004: its check is
-- a trigger and a key-share lock of the run per transition (EXPLAIN ANALYZE of a 20,000-run
-- submission: 0.49 s of 1.26 s for the transitions). What it guarded holds by construction: a
-- transition is only written in the transaction that creates or changes its run (that run's row
-- is inserted or locked there), and runs are never deleted.
ALTER TABLE run_transitions DROP CONSTRAINT run_transitions_run_id_fkey;

-- The change notification of 0010, unchanged, except that a transaction storing many runs at
-- once (Store::CreateSweep) may set scalelab.skip_run_notify = 'on' for its own statements and
-- send the one notification per sweep itself: the trigger's join of every new transition with
-- runs cost 0.41 s for a 20,000-run submission, to say "sweep N has PENDING runs".
CREATE OR REPLACE FUNCTION scalelab_notify_run_transitions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  change RECORD;
BEGIN
  IF current_setting('scalelab.skip_run_notify', true) = 'on' THEN
    RETURN NULL;
  END IF;
  FOR change IN
    SELECT DISTINCT r.sweep_id, t.to_state FROM new_transitions t JOIN runs r ON r.id = t.run_id
  LOOP
    PERFORM pg_notify('scalelab_runs', change.sweep_id || ' ' || change.to_state);
  END LOOP;
  RETURN NULL;
END;
$$;

-- The foreign key from runs.admitted_worker_id to workers goes for the same reason: it is checked
-- for every run an admission pass writes (38 ms of 270 ms for 2,000 admissions under load), and
-- only AdmitRuns sets it, to a worker id the pass read from workers; workers are never deleted
-- (a lost worker stays as a row in state LOST).
ALTER TABLE runs DROP CONSTRAINT runs_admitted_worker_id_fkey;
