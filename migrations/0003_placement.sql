-- What placement granted each attempt: its GPUs (node indices, as CUDA_VISIBLE_DEVICES numbers
-- them) and its CPU slots. The placement snapshot subtracts the grants of LEASED and RUNNING
-- attempts from their worker's inventory. Attempts from before placement held one slot and no GPU.
ALTER TABLE run_attempts
  ADD COLUMN gpu_indices INT[] NOT NULL DEFAULT '{}',
  ADD COLUMN cpu_slots   INT   NOT NULL DEFAULT 1;
