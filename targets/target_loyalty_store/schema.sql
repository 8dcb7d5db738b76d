-- The loyalty store's own schema. Applied at every start; every statement is idempotent, so a
-- newer target migrates an older store in place (new columns are added by the loader, never
-- by dropping anything). No PRIMARY KEY constraints: the loader upserts set-based (delete the
-- batch's keys, insert the batch, one transaction), which is several times faster in DuckDB
-- than maintaining ART indexes, and key uniqueness is guaranteed by that upsert.

CREATE TABLE IF NOT EXISTS _store_meta (
    key VARCHAR NOT NULL,
    value VARCHAR
);

-- One row per person, matched on the configured match field (normalised).
CREATE TABLE IF NOT EXISTS contacts (
    contact_id VARCHAR NOT NULL,      -- '<match_field>:<normalised value>', e.g. 'email:ann@example.com'
    match_field VARCHAR NOT NULL,     -- 'email' or 'mobile'
    email VARCHAR,                    -- trimmed, lower-case
    mobile VARCHAR,                   -- digits, leading '+' kept
    first_name VARCHAR,
    last_name VARCHAR,
    birthday DATE,
    address VARCHAR,
    zip_code VARCHAR,
    city VARCHAR,
    country_code VARCHAR,
    is_active BOOLEAN,
    is_club_member BOOLEAN,
    newsletter BOOLEAN,               -- may receive newsletters now
    consent_related BOOLEAN,
    unsubscribed_at TIMESTAMPTZ,      -- set when newsletter went true -> false; blocks re-subscribe
    card_number VARCHAR,
    card_name VARCHAR,
    first_seen_at TIMESTAMPTZ,        -- earliest created_at of any source record
    updated_at TIMESTAMPTZ,           -- latest updated_at of any source record
    member_number VARCHAR             -- the source's member/customer number (FlexPOS CustomerNumber)
);

-- Each source system's id for a person -> the contact.
CREATE TABLE IF NOT EXISTS contact_ids (
    source VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    contact_id VARCHAR NOT NULL,
    newsletter BOOLEAN,               -- that source's own flag, as last loaded
    created_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ
);

-- Every consent statement loaded: a person's newsletter / unsubscribed_at is derived from
-- all of them (README: Consent), so arrival order and batch/run splits cannot change it.
-- One row per distinct (contact, source, value, time).
CREATE TABLE IF NOT EXISTS contact_consents (
    contact_id VARCHAR NOT NULL,
    source VARCHAR,
    newsletter BOOLEAN NOT NULL,      -- the statement: yes (true) or no (false) to `topic`
    said_at TIMESTAMPTZ,              -- the record's updated_at
    topic VARCHAR                     -- newsletter (also when null) or consent_related (10_2)
);

-- The activity feed at item level (docs/store-streams.md), key line_id.
CREATE TABLE IF NOT EXISTS order_lines (
    line_id VARCHAR NOT NULL,
    order_id VARCHAR,
    source VARCHAR,
    source_customer_id VARCHAR,
    line_type VARCHAR,
    product_id VARCHAR,
    product_name VARCHAR,
    quantity DECIMAL(18, 4),
    amount DECIMAL(18, 4),
    discount DECIMAL(18, 4),
    currency VARCHAR,
    store VARCHAR,
    channel VARCHAR,
    occurred_at TIMESTAMPTZ,
    event_name VARCHAR,
    event_date TIMESTAMPTZ,
    zone VARCHAR,
    "row" VARCHAR,
    seat VARCHAR,
    valid_from DATE,
    valid_to DATE,
    cancelled_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ,
    sku VARCHAR,                      -- product number (FlexPOS journal line ProductNumber)
    unit_price DECIMAL(18, 4),        -- incl. VAT
    vat_rate DECIMAL(9, 4),           -- percent, e.g. 25
    receipt_number VARCHAR,           -- FlexPOS JournalNumber
    store_id VARCHAR,                 -- the store's id in the source (FlexPOS StoreUid)
    event_id VARCHAR,                 -- tickets: the event's id (EventUid)
    order_number VARCHAR,             -- tickets: the source's order number
    status VARCHAR,                   -- tickets: lower-case source status, e.g. active, cancelled
    product_group VARCHAR,            -- e.g. Dining, Bar, Merchandise (POS lines)
    fee DECIMAL(18, 4),               -- tickets: the ticket fee, apart from the price (Billetten)
    promotion_code VARCHAR            -- POS lines: the promotion code the sale used (e.g. WELCOME10)
);

-- Records that were not loaded, with why: from the mapper's _rejects stream and from this target.
CREATE TABLE IF NOT EXISTS _rejects (
    reject_id VARCHAR NOT NULL,
    stream VARCHAR,
    rule VARCHAR,
    reason VARCHAR,
    record JSON,
    rejected_at TIMESTAMPTZ
);

-- One row per target invocation.
CREATE TABLE IF NOT EXISTS _runs (
    run_id VARCHAR NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    outcome VARCHAR,                  -- running | input_ended | failed (killed: stays 'running')
    records JSON,                     -- {"stream": records received}
    rejects BIGINT,                   -- records this run routed to _rejects
    states_emitted BIGINT,
    error VARCHAR
);

-- Streams seen, their table and last SCHEMA (what an unknown stream's table was built from).
CREATE TABLE IF NOT EXISTS _streams (
    stream VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    key_properties JSON,
    schema JSON,
    updated_at TIMESTAMPTZ
);

-- Billetten (tap-billetten): cancellations and tracking events --
-- Single-ticket cancellations as Billetten reports them; the line itself keeps cancelled_at.
CREATE TABLE IF NOT EXISTS ticket_cancellations (
    cancellation_id VARCHAR NOT NULL,
    source VARCHAR,
    line_id VARCHAR,                  -- order_lines.line_id of the cancelled seat
    order_id VARCHAR,
    source_customer_id VARCHAR,
    reason VARCHAR,
    refund_amount DECIMAL(18, 4),
    cancelled_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ
);

-- Browsers' behaviour (docs/store-streams.md), key tracking_event_id. A pairing event (a
-- logged-in or paying buyer with cookies accepted) names the buyer of its browser.
CREATE TABLE IF NOT EXISTS tracking_events (
    tracking_event_id VARCHAR NOT NULL,
    source VARCHAR,
    event_type VARCHAR,               -- session | visit | add_to_cart | purchase | pairing
    browser_id VARCHAR,
    session_id VARCHAR,
    cookies_accepted BOOLEAN,
    source_customer_id VARCHAR,       -- pairing events: the buyer (contact_ids.source_id)
    pairing_trigger VARCHAR,          -- login | checkout
    url VARCHAR,
    event_id VARCHAR,                 -- the show's id, as on order_lines
    order_id VARCHAR,
    line_id VARCHAR,
    quantity BIGINT,
    price DECIMAL(18, 4),             -- incl. VAT, excl. fees
    occurred_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ
);

-- LoyaltyLion (tap-loyaltylion, docs/loyaltylion.md) --
-- Each LoyaltyLion member as last read, key (source, source_id); the same records also
-- become contacts (the sink merges their contact fields: README, "LoyaltyLion members").
CREATE TABLE IF NOT EXISTS loyalty_members (
    source VARCHAR NOT NULL,          -- 'loyaltylion'
    source_id VARCHAR NOT NULL,       -- the LoyaltyLion customer id
    programme VARCHAR,                -- the customer's merchant_id, as text
    email VARCHAR,
    first_name VARCHAR,
    last_name VARCHAR,
    birthday DATE,
    points_approved BIGINT,
    points_pending BIGINT,
    points_spent BIGINT,
    rewards_claimed BIGINT,
    rewards_used BIGINT,              -- [EMULATED] field: not in the public API
    blocked BOOLEAN,
    guest BOOLEAN,
    enrolled BOOLEAN,
    enrolled_at TIMESTAMPTZ,
    referral_id VARCHAR,
    referral_url VARCHAR,
    receipt_upload_url VARCHAR,       -- [EMULATED] field: not in the public API
    insights_segment VARCHAR,         -- Loyal | At Risk | Win Back | null
    tier_id BIGINT,
    tier_name VARCHAR,
    tier_number BIGINT,
    tier_position BIGINT,
    tier_lower_bound BIGINT,          -- points earned in the tier period to hold the tier
    tier_upper_bound BIGINT,          -- null for the top tier
    tier_started_at TIMESTAMPTZ,
    tier_expires_at TIMESTAMPTZ,      -- null for a tier that does not expire (the default one)
    created_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ
);

-- The points ledger: one row per transaction, signed deltas, never changed (a voided
-- activity is a second, negative transaction). Key (source, transaction_id).
CREATE TABLE IF NOT EXISTS loyalty_transactions (
    source VARCHAR NOT NULL,
    transaction_id BIGINT NOT NULL,
    source_customer_id VARCHAR,       -- loyalty_members.source_id
    kind VARCHAR,                     -- activity | adjustment | claimed_reward | expiry
    points_approved BIGINT,           -- signed delta
    points_pending BIGINT,            -- signed delta
    state VARCHAR,                    -- activity: pending | approved | void; reward: claimed | used
    rule_name VARCHAR,
    reward_title VARCHAR,
    point_cost BIGINT,
    note VARCHAR,
    created_at TIMESTAMPTZ
);

-- views --
-- Lines with the person they belong to. Resolved at query time, because a line may arrive
-- before its contact (another pipeline, a later window): nothing is lost at load time.
CREATE OR REPLACE VIEW order_lines_by_contact AS
SELECT l.*, ci.contact_id
FROM order_lines AS l
LEFT JOIN contact_ids AS ci
    ON ci.source = l.source AND ci.source_id = l.source_customer_id;

-- Lines combined per order: one row per (source, order_id). Five seats in one order are one
-- order here (has purchased) and tickets = 5 (tickets bought). Cancelled lines are kept in
-- order_lines but not counted in amount/tickets/items.
CREATE OR REPLACE VIEW orders AS
SELECT
    l.source,
    l.order_id,
    any_value(l.contact_id) AS contact_id,
    any_value(l.source_customer_id) AS source_customer_id,
    min(l.occurred_at) AS ordered_at,
    any_value(l.currency) AS currency,
    any_value(l.store) AS store,
    any_value(l.channel) AS channel,
    count(*) AS lines,
    count(*) FILTER (WHERE l.cancelled_at IS NULL) AS active_lines,
    coalesce(sum(l.quantity) FILTER (WHERE l.cancelled_at IS NULL), 0) AS items,
    count(*) FILTER (WHERE l.line_type = 'ticket' AND l.cancelled_at IS NULL) AS tickets,
    coalesce(sum(l.amount) FILTER (WHERE l.cancelled_at IS NULL), 0) AS amount,
    bool_or(l.line_type = 'return') AS has_return,
    bool_and(l.cancelled_at IS NOT NULL) AS cancelled,
    max(l.updated_at) AS updated_at
FROM order_lines_by_contact AS l
GROUP BY l.source, l.order_id;

-- Billetten (tap-billetten, transforms/mappings/billetten_to_store.yaml) --

-- Every event with the contact its browser was paired to: a pairing with cookies accepted
-- links that browser's earlier and later events (the first pairing wins); the events of a
-- browser never paired, or paired to a buyer who is not a contact, have contact_id NULL
-- (anonymous). Resolved at query time, so a pairing that arrives later still links.
CREATE OR REPLACE VIEW tracking_events_by_contact AS
WITH pairings AS (
    SELECT p.source, p.browser_id,
           arg_min(p.source_customer_id, p.occurred_at) AS source_customer_id,
           min(p.occurred_at) AS paired_at
    FROM tracking_events AS p
    WHERE p.event_type = 'pairing' AND p.cookies_accepted AND p.source_customer_id IS NOT NULL
    GROUP BY p.source, p.browser_id
)
SELECT e.*, ci.contact_id, p.paired_at
FROM tracking_events AS e
LEFT JOIN pairings AS p ON p.source = e.source AND p.browser_id = e.browser_id
LEFT JOIN contact_ids AS ci
    ON ci.source = p.source AND ci.source_id = p.source_customer_id;

-- LoyaltyLion (tap-loyaltylion through transforms/mappings/loyaltylion_to_store.yaml) --------
-- Formulas and sources of every field: docs/loyaltylion.md (the tables are above the views).

-- The programme's tiers, as the members' tier memberships show them.
CREATE OR REPLACE VIEW loyalty_tiers AS
SELECT
    source,
    tier_id,
    any_value(tier_name) AS tier_name,
    any_value(tier_position) AS tier_position,
    any_value(tier_lower_bound) AS lower_bound,
    any_value(tier_upper_bound) AS upper_bound
FROM loyalty_members
WHERE tier_id IS NOT NULL
GROUP BY source, tier_id;

-- One row per contact and loyalty programme: every field of the LoyaltyLion -> Ometria sync
-- list. The columns are a contract (issue 14's models read them); formulas: docs/loyaltylion.md.
CREATE OR REPLACE VIEW loyalty_accounts AS
WITH ledger AS (
    SELECT
        source,
        source_customer_id AS source_id,
        CAST(-coalesce(sum(points_approved + points_pending) FILTER (WHERE kind = 'expiry'), 0)
            AS BIGINT) AS expired,
        max(created_at) AS last_at
    FROM loyalty_transactions
    GROUP BY source, source_customer_id
),
earned AS (
    SELECT m.source, m.source_id, CAST(sum(t.points_approved + t.points_pending) AS BIGINT) AS n
    FROM loyalty_members AS m
    JOIN loyalty_transactions AS t
        ON t.source = m.source AND t.source_customer_id = m.source_id
    WHERE t.kind = 'activity' AND t.created_at >= m.tier_started_at
    GROUP BY m.source, m.source_id
),
a AS (
    SELECT
        m.*,
        coalesce(l.expired, 0) AS points_expired,
        CASE WHEN m.tier_id IS NOT NULL THEN coalesce(e.n, 0) END AS progress,
        greatest(m.updated_at, l.last_at) AS as_of
    FROM loyalty_members AS m
    LEFT JOIN ledger AS l USING (source, source_id)
    LEFT JOIN earned AS e USING (source, source_id)
),
p AS (
    SELECT
        a.*,
        CASE
            WHEN progress IS NULL THEN NULL
            WHEN progress <= 0 OR tier_expires_at IS NULL OR as_of <= tier_started_at
                OR as_of >= tier_expires_at THEN progress
            ELSE progress + CAST(floor(progress * (epoch(tier_expires_at) - epoch(as_of))
                / (epoch(as_of) - epoch(tier_started_at))) AS BIGINT)
        END AS projected,
        (
            SELECT arg_min(t.tier_name, t.tier_position) FROM loyalty_tiers AS t
            WHERE t.source = a.source AND t.tier_position > a.tier_position
        ) AS next_name,
        (
            SELECT arg_min(t.lower_bound, t.tier_position) FROM loyalty_tiers AS t
            WHERE t.source = a.source AND t.tier_position > a.tier_position
        ) AS next_lower
    FROM a
)
SELECT
    ci.contact_id,
    p.source,
    p.source_id,
    p.programme,
    p.points_approved + p.points_pending AS points_total,
    p.points_approved,
    p.points_pending,
    p.points_spent,
    p.points_expired,
    p.points_approved + p.points_pending + p.points_spent + p.points_expired AS points_lifetime,
    p.rewards_claimed,
    p.rewards_used,
    p.blocked,
    p.enrolled,
    p.enrolled_at,
    p.referral_url,
    p.receipt_upload_url,
    p.birthday,
    p.insights_segment,
    p.tier_name,
    p.tier_started_at,
    p.tier_expires_at,
    p.progress AS tier_progress,
    p.projected AS tier_progress_projected,
    CASE WHEN p.progress IS NOT NULL
        THEN greatest(0, p.tier_lower_bound - p.progress) END AS tier_progress_to_renew,
    CASE WHEN p.progress IS NOT NULL AND p.next_lower IS NOT NULL
        THEN greatest(0, p.next_lower - p.progress) END AS tier_progress_to_upgrade,
    p.next_name AS next_tier_name,
    (
        SELECT arg_max(t.tier_name, t.lower_bound) FROM loyalty_tiers AS t
        WHERE t.source = p.source AND t.lower_bound <= p.projected
    ) AS forecast_tier_name,
    p.as_of AS updated_at
FROM p
JOIN contact_ids AS ci ON ci.source = p.source AND ci.source_id = p.source_id;
