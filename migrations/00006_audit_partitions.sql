-- +goose Up
-- audit_log becomes partitioned by month on `at`, so that old months can be
-- exported and then dropped whole (see swarmkey_drop_audit_partition below)
-- while the log stays append-only for everyone else. Needs PostgreSQL 13 or
-- later (BEFORE row triggers on a partitioned table).
--
-- The existing table is not copied: it becomes the first partition,
-- audit_log_legacy, holding everything before the start of next month (its
-- rows, ids and the id sequence are kept as they are; an empty one is
-- dropped, so a new database has monthly partitions only). New months get
-- their own partitions, audit_log_pYYYY_MM, created ahead by
-- swarmkey_ensure_audit_partition, which swarmkey calls before it appends
-- to a month it has not seen (state.DB). Month boundaries are in UTC.

-- Month boundaries and the bounds written below are in UTC, whatever the
-- server's or the role's time zone.
SET LOCAL TimeZone = 'UTC';

-- The old table's row trigger would clash with the clone of the parent's;
-- its TRUNCATE trigger stays (statement triggers are not inherited).
-- Its primary key (id) gives way to the parent's (id, at), which the
-- attach below builds on it.
DROP TRIGGER audit_log_no_update_delete ON audit_log;
ALTER TABLE audit_log RENAME TO audit_log_legacy;
ALTER TABLE audit_log_legacy DROP CONSTRAINT audit_log_pkey;
ALTER INDEX audit_log_by_policy RENAME TO audit_log_legacy_by_policy;

-- The key includes `at`: a partitioned table's unique keys must hold its
-- partition key. Ids still come from one sequence, so they stay unique.
CREATE TABLE audit_log (
    id       bigint NOT NULL DEFAULT nextval('audit_log_id_seq'),
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    policy   text,
    rotation uuid,
    action   text NOT NULL,
    detail   jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;
ALTER TABLE audit_log_legacy ALTER COLUMN id DROP DEFAULT;
CREATE INDEX audit_log_by_policy ON audit_log (policy, at);
-- `swarmkey audit export` reads in (at, id) order.
CREATE INDEX audit_log_by_at ON audit_log (at, id);
-- swarmkey_drop_audit_partition looks up the exports.
CREATE INDEX audit_log_exports ON audit_log (at) WHERE action = 'audit.exported';

-- +goose StatementBegin
DO $$
DECLARE
    bound timestamptz;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM audit_log_legacy) THEN
        -- A new database: every month gets its own partition.
        DROP TABLE audit_log_legacy;
        RETURN;
    END IF;
    SELECT greatest(date_trunc('month', now()), date_trunc('month', max(at))) + interval '1 month'
    INTO bound FROM audit_log_legacy;
    EXECUTE format('ALTER TABLE audit_log ATTACH PARTITION audit_log_legacy FOR VALUES FROM (MINVALUE) TO (%L)', bound);
END
$$;
-- +goose StatementEnd

-- Row triggers on the parent are cloned onto every partition, present and
-- future. A TRUNCATE trigger is not: the parent's refuses TRUNCATE
-- audit_log, and each partition gets its own when it is created.
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The partitions with their bounds (from_at NULL: everything before to_at).
CREATE VIEW swarmkey_audit_partitions AS
SELECT c.relname::text AS partition,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']*)''\)'))[1]::timestamptz AS from_at,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']*)''\)'))[1]::timestamptz AS to_at
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'audit_log'::regclass;

-- swarmkey_ensure_audit_partition(at) makes sure a partition holds `at`
-- and that the next month has one too, creating what is missing. A new
-- partition is created empty and then attached, which locks audit_log only
-- against other DDL (SHARE UPDATE EXCLUSIVE), never against appends or
-- reads such as a long export; it gets the TRUNCATE trigger (row triggers
-- come from the parent). SECURITY DEFINER: partitions belong to the schema
-- owner, whoever appends.
-- +goose StatementBegin
CREATE FUNCTION swarmkey_ensure_audit_partition(at timestamptz) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET TimeZone = 'UTC' AS $$
DECLARE
    m    timestamptz;
    name text;
BEGIN
    FOREACH m IN ARRAY ARRAY[date_trunc('month', at), date_trunc('month', at) + interval '1 month'] LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM swarmkey_audit_partitions p
                              WHERE (p.from_at IS NULL OR p.from_at <= m) AND m < p.to_at);
        -- One creator at a time; the second finds the first's.
        PERFORM pg_advisory_xact_lock(6004100300060000006);
        CONTINUE WHEN EXISTS (SELECT 1 FROM swarmkey_audit_partitions p
                              WHERE (p.from_at IS NULL OR p.from_at <= m) AND m < p.to_at);
        name := 'audit_log_p' || to_char(m, 'YYYY_MM');
        EXECUTE format('CREATE TABLE %I (LIKE audit_log)', name);
        EXECUTE format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()', name);
        EXECUTE format('ALTER TABLE audit_log ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       name, m, m + interval '1 month');
    END LOOP;
END
$$;
-- +goose StatementEnd

-- swarmkey_drop_audit_partition(month) drops the partition that holds the
-- start of month, for the role an operator grants it to (see README.md,
-- "Audit retention"). It refuses a partition whose newest possible entry is
-- less than 90 days old, and one that no `swarmkey audit export --before T`
-- with T at or after its end has covered (an audit.exported entry). It
-- appends audit.partition_dropped (the database role that asked, the
-- partition, its bounds, its entries, the export that covered it) in the
-- same transaction as the drop: no drop without its entry. SECURITY
-- DEFINER: the caller needs only EXECUTE on it.
-- +goose StatementBegin
CREATE FUNCTION swarmkey_drop_audit_partition(month date) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET TimeZone = 'UTC' AS $$
DECLARE
    min_age  constant interval := interval '90 days';
    m        timestamptz := date_trunc('month', month::timestamptz);
    p        record;
    exported timestamptz;
    entries  bigint;
BEGIN
    SELECT * INTO p FROM swarmkey_audit_partitions
    WHERE (from_at IS NULL OR from_at <= m) AND m < to_at;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no audit_log partition holds %: SELECT * FROM swarmkey_audit_partitions lists them', to_char(m, 'YYYY-MM')
            USING ERRCODE = 'undefined_table';
    END IF;
    IF p.to_at > now() - min_age THEN
        RAISE EXCEPTION 'partition % holds entries until %, less than % ago: refused', p.partition, p.to_at, min_age
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT max((detail->>'before')::timestamptz) INTO exported FROM audit_log WHERE action = 'audit.exported';
    IF exported IS NULL OR exported < p.to_at THEN
        RAISE EXCEPTION 'partition % (entries before %) was not exported: run `swarmkey audit export --before %` first',
            p.partition, p.to_at, to_char(p.to_at, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE format('SELECT count(*) FROM %I', p.partition) INTO entries;
    PERFORM swarmkey_ensure_audit_partition(now());
    INSERT INTO audit_log (at, actor, action, detail)
    VALUES (now(), 'db:' || session_user, 'audit.partition_dropped',
            jsonb_build_object('partition', p.partition, 'from', p.from_at, 'to', p.to_at,
                               'entries', entries, 'exported_before', exported));
    EXECUTE format('DROP TABLE %I', p.partition);
    RETURN p.partition;
END
$$;
-- +goose StatementEnd

-- Only those an operator grants may drop; the ensure function is for the
-- schema owner (and for an application role the operator grants it to).
REVOKE ALL ON FUNCTION swarmkey_drop_audit_partition(date) FROM PUBLIC;
REVOKE ALL ON FUNCTION swarmkey_ensure_audit_partition(timestamptz) FROM PUBLIC;

-- A SECURITY DEFINER function must not find objects through the caller's
-- search_path: pin it to this schema.
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION swarmkey_ensure_audit_partition(timestamptz) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION swarmkey_drop_audit_partition(date) SET search_path = %I, pg_temp', current_schema());
END
$$;
-- +goose StatementEnd

SELECT swarmkey_ensure_audit_partition(now());

-- +goose Down
-- Back to one table, keeping every row and id: the rows are copied.
DROP FUNCTION swarmkey_drop_audit_partition(date);
DROP FUNCTION swarmkey_ensure_audit_partition(timestamptz);
DROP VIEW swarmkey_audit_partitions;
CREATE TABLE audit_log_plain (
    id       bigint PRIMARY KEY DEFAULT nextval('audit_log_id_seq'),
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    policy   text,
    rotation uuid,
    action   text NOT NULL,
    detail   jsonb NOT NULL DEFAULT '{}'
);
INSERT INTO audit_log_plain SELECT * FROM audit_log ORDER BY id;
ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log_plain.id;
DROP TABLE audit_log;
ALTER TABLE audit_log_plain RENAME TO audit_log;
ALTER INDEX audit_log_plain_pkey RENAME TO audit_log_pkey;
CREATE INDEX audit_log_by_policy ON audit_log (policy, at);
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
