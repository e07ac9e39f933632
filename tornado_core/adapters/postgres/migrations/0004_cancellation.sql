-- Cancellation: a tenant may cancel a job. A waiting one becomes 'cancelled' at once; a running
-- one keeps running until its worker's heartbeat reads this column and stops it.
ALTER TABLE tornado_jobs ADD COLUMN cancel_requested_at timestamptz;
