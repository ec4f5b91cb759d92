-- Pipelines (issue 8): a sweep's runs belong to stages (pretrain -> sft -> grpo -> eval), and a
-- run of a later stage starts from its parent's final weights. kind is the run's own (a sweep's
-- stages differ in kind); stage names the stage; parent_run_id links a child to the run it
-- starts from (NULL for runs of the main stage). Runs stored before this have their sweep's kind
-- and the stage 'main'.
ALTER TABLE runs
  ADD COLUMN kind          TEXT,
  ADD COLUMN stage         TEXT NOT NULL DEFAULT 'main',
  ADD COLUMN parent_run_id BIGINT REFERENCES runs(id);
UPDATE runs r SET kind = s.kind FROM sweeps s WHERE s.id = r.sweep_id;
ALTER TABLE runs ALTER COLUMN kind SET NOT NULL;
-- Children of a run: cancelling a subtree, listing what an SFT run's RL children reached.
CREATE INDEX runs_parent_idx ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
