"""The receive statements of the PostgreSQL queue: oldest first, or in turns across message groups.

Both pick messages, then deliver them (or move those received too often to the dead-letter queue)
in the same statement; they differ only in how they pick.
"""

from __future__ import annotations

_CONFIG = """
WITH cfg AS (
    SELECT q.max_receive_count, d.name AS dlq
    FROM tornado_queues q LEFT JOIN tornado_queues d ON d.name = q.dead_letter_name
    WHERE q.name = %(queue)s
),
"""

# ``(SELECT clock_timestamp())`` is evaluated once, so the index can use it.
_OLDEST_FIRST = """picked AS (
    SELECT m.id, m.receive_count, m.visible_at
    FROM tornado_messages m
    WHERE m.queue = %(queue)s AND m.visible_at <= (SELECT clock_timestamp())
    ORDER BY m.visible_at, m.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
"""

# Each group's oldest visible messages, numbered per group: the first of every group go first.
_IN_TURNS = """groups AS (  -- each group (tenant) with a message in the queue, by a loose index scan
    SELECT g.message_group FROM (
        WITH RECURSIVE walk AS (
            (SELECT message_group FROM tornado_messages
             WHERE queue = %(queue)s AND message_group IS NOT NULL ORDER BY message_group LIMIT 1)
            UNION ALL
            SELECT (SELECT m.message_group FROM tornado_messages m
                    WHERE m.queue = %(queue)s AND m.message_group > walk.message_group
                    ORDER BY m.message_group LIMIT 1)
            FROM walk WHERE walk.message_group IS NOT NULL
        )
        SELECT message_group FROM walk WHERE message_group IS NOT NULL
    ) AS g
),
turns AS (  -- each group's oldest visible messages, numbered: the first of every group go first
    SELECT c.id, c.visible_at, c.turn FROM groups, LATERAL (
        SELECT m.id, m.visible_at, row_number() OVER (ORDER BY m.visible_at, m.id) AS turn
        FROM tornado_messages m
        WHERE m.queue = %(queue)s AND m.message_group = groups.message_group
          AND m.visible_at <= (SELECT clock_timestamp())
        ORDER BY m.visible_at, m.id LIMIT %(limit)s
    ) AS c
    UNION ALL
    SELECT u.id, u.visible_at, row_number() OVER (ORDER BY u.visible_at, u.id) FROM (
        SELECT m.id, m.visible_at FROM tornado_messages m
        WHERE m.queue = %(queue)s AND m.message_group IS NULL
          AND m.visible_at <= (SELECT clock_timestamp())
        ORDER BY m.visible_at, m.id LIMIT %(limit)s
    ) AS u
),
picked AS (
    SELECT m.id, m.receive_count, m.visible_at
    FROM tornado_messages m
    WHERE m.id IN (SELECT id FROM turns ORDER BY turn, visible_at, id LIMIT %(limit)s)
      AND m.queue = %(queue)s AND m.visible_at <= (SELECT clock_timestamp())
    FOR UPDATE SKIP LOCKED
),
"""

_DELIVER = """doomed AS (
    SELECT p.id FROM picked p, cfg
    WHERE cfg.dlq IS NOT NULL AND p.receive_count >= cfg.max_receive_count
),
moved AS (
    UPDATE tornado_messages m
    SET queue = cfg.dlq, receive_count = 0, receipt = NULL, visible_at = clock_timestamp()
    FROM doomed, cfg
    WHERE m.id = doomed.id
    RETURNING m.id
),
delivered AS (
    UPDATE tornado_messages m
    SET receive_count = m.receive_count + 1, receipt = gen_random_uuid(),
        visible_at = clock_timestamp() + %(visibility)s * interval '1 second'
    FROM picked p, cfg
    WHERE m.id = p.id AND p.id NOT IN (SELECT id FROM doomed)
    RETURNING m.id, m.message_id, m.body, m.receipt, m.receive_count, p.visible_at AS was_visible_at
)
SELECT 'msg', id, message_id::text, body, receipt::text, receive_count, was_visible_at, NULL::float8
    FROM delivered
UNION ALL
SELECT 'moved', id, NULL, NULL, NULL, 0, NULL, NULL FROM moved
UNION ALL
SELECT 'queue', NULL, NULL, NULL, NULL, 0, NULL,
    (SELECT extract(epoch FROM min(visible_at) - clock_timestamp())::float8
     FROM tornado_messages WHERE queue = %(queue)s AND visible_at > (SELECT clock_timestamp()))
FROM cfg
"""

#: A receive: the oldest visible messages.
RECEIVE = _CONFIG + _OLDEST_FIRST + _DELIVER

#: A fair queue's receive: the visible messages in turns across their groups (the jobs' tenants).
RECEIVE_FAIR = _CONFIG + _IN_TURNS + _DELIVER
