-- faasmeter core schema: tenants, keys, raw records, invocations, hourly usage, invoices.
--
-- Keys that matter at scale start with the tenant, so the tables can be distributed by
-- tenant. The two big tables (records, invocations) are partitioned by month; PostgreSQL
-- wants the partition key inside every unique key, so the uniqueness that must hold across
-- months (a record id, an invocation id, per tenant) lives in small id tables of their own.

CREATE TABLE tenants (
    tenant     text PRIMARY KEY CHECK (tenant ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    plan       text NOT NULL DEFAULT 'aws-lambda-x86',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Keys are shown once at creation; only their SHA-256 is kept. key_id is the public prefix
-- of the key, used to find the row before the constant-time comparison of the hash. Keys
-- are few and read by every meterd: a reference table, not distributed by tenant.
CREATE TABLE api_keys (
    key_id     text PRIMARY KEY,
    key_hash   bytea NOT NULL CHECK (length(key_hash) = 32),
    role       text NOT NULL CHECK (role IN ('admin', 'ingest', 'tenant')),
    tenant     text REFERENCES tenants (tenant),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CHECK ((role = 'tenant') = (tenant IS NOT NULL))
);

-- The idempotency gate: one row per record id and tenant, whatever the month. digest is the
-- SHA-256 of the record's canonical content, so a repeat can be told apart from a conflict.
CREATE TABLE record_ids (
    tenant text NOT NULL,
    id     text NOT NULL,
    digest bytea NOT NULL,
    time   timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- Every accepted record as it came, append-only. Partitions are created on demand.
CREATE TABLE records (
    tenant        text NOT NULL,
    id            text NOT NULL,
    type          text NOT NULL CHECK (type IN ('start', 'stop', 'resource')),
    invocation_id text NOT NULL,
    time          timestamptz NOT NULL,
    body          jsonb NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (time);

-- Where each invocation's row lives: the month it started in is fixed here.
CREATE TABLE invocation_ids (
    tenant        text NOT NULL,
    invocation_id text NOT NULL,
    started_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant, invocation_id)
);

-- One row per execution, built from its start and stop records in either order. started_at
-- is the start's time, or the stop's time minus its duration while the start is missing.
CREATE TABLE invocations (
    tenant         text NOT NULL,
    invocation_id  text NOT NULL,
    started_at     timestamptz NOT NULL,
    function       text NOT NULL,
    has_start      boolean NOT NULL DEFAULT false,
    has_stop       boolean NOT NULL DEFAULT false,
    memory_mb      integer,
    timeout_ms     bigint,
    cold_start     boolean,
    trigger        text,
    correlation_id text,
    stopped_at     timestamptz,
    duration_us    bigint,
    init_us        bigint,
    status         text,
    exit_code      integer,
    cpu_user_us    bigint,
    cpu_sys_us     bigint,
    max_rss_kb     bigint,
    bytes_in       bigint,
    bytes_out      bigint,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, invocation_id, started_at)
) PARTITION BY RANGE (started_at);

-- Usage per tenant, function, hour (of the start) and configured memory, kept current as
-- stops arrive, so that usage queries do not scan invocations.
CREATE TABLE usage_hourly (
    tenant      text NOT NULL,
    function    text NOT NULL,
    hour        timestamptz NOT NULL,
    memory_mb   integer NOT NULL,
    invocations bigint NOT NULL DEFAULT 0,
    errors      bigint NOT NULL DEFAULT 0,
    cold_starts bigint NOT NULL DEFAULT 0,
    duration_us bigint NOT NULL DEFAULT 0,
    init_us     bigint NOT NULL DEFAULT 0,
    cpu_us      bigint NOT NULL DEFAULT 0,
    bytes_in    bigint NOT NULL DEFAULT 0,
    bytes_out   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, function, hour, memory_mb)
);

-- Invoices: a draft can be rebuilt; a final one is frozen. Amounts are exact decimals.
CREATE TABLE invoices (
    tenant       text NOT NULL REFERENCES tenants (tenant),
    invoice_id   bigint GENERATED ALWAYS AS IDENTITY,
    period       text NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    plan         text NOT NULL,
    currency     text NOT NULL,
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'final')),
    total        numeric(24, 2) NOT NULL,
    document     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finalized_at timestamptz,
    PRIMARY KEY (tenant, invoice_id),
    UNIQUE (tenant, period)
);

CREATE TABLE invoice_lines (
    tenant     text NOT NULL,
    invoice_id bigint NOT NULL,
    line_no    integer NOT NULL,
    item       text NOT NULL,
    meter      text NOT NULL,
    function   text,
    quantity   numeric NOT NULL,
    unit_price numeric NOT NULL,
    amount     numeric(24, 2) NOT NULL,
    PRIMARY KEY (tenant, invoice_id, line_no),
    FOREIGN KEY (tenant, invoice_id) REFERENCES invoices (tenant, invoice_id) ON DELETE CASCADE
);
