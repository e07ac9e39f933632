-- Fair dispatch: a queue marked fair hands its messages out round-robin across their groups (the
-- jobs' tenants), so one tenant's backlog does not hold back another tenant's jobs. Only fair
-- queues store a message's group, so the index costs nothing on the others.
ALTER TABLE tornado_queues ADD COLUMN fair boolean NOT NULL DEFAULT false;
ALTER TABLE tornado_messages ADD COLUMN message_group text;
CREATE INDEX tornado_messages_group_idx ON tornado_messages (queue, message_group, visible_at, id)
    WHERE message_group IS NOT NULL;
