-- The FlexPOS guide's segmentation examples and automation triggers, as DuckDB table macros.
-- Installed (CREATE OR REPLACE) by target-loyalty-store at every start, so an analyst can
-- `FROM seg_booked_event('Hamlet')` and `loyalty segment show` runs the very same macros.
--
-- Each segment is introduced by comment lines the CLI reads (docs/segments.md):
--   -- segment: NAME                 the macro is seg_NAME
--   -- question: ...                 the question it answers, in plain words
--   -- param NAME TYPE: ...          one per macro parameter (integer, number, text, date,
--                                   timestamp); defaults are the macro's own `:=` values
-- Every segment returns contact_id, email and its evidence columns, one row per contact.
-- Periods are (as_of - days, as_of]; as_of NULL is the current time.
-- Cancelled lines never count. Amounts are per currency, never summed across currencies.
-- Columns are always qualified (l.zone), because an unqualified name that is also a
-- parameter name means the parameter.

CREATE OR REPLACE MACRO _seg_now(as_of) AS coalesce(CAST(as_of AS TIMESTAMPTZ), get_current_timestamp());

CREATE OR REPLACE MACRO _seg_in_period(ts, days, as_of) AS
    ts > _seg_now(as_of) - to_days(CAST(days AS INTEGER)) AND ts <= _seg_now(as_of);

-- The lines that belong to a known contact, with its e-mail address; cancelled ones left out.
CREATE OR REPLACE MACRO _seg_lines() AS TABLE
SELECT l.*, c.email
FROM order_lines_by_contact AS l
JOIN contacts AS c ON c.contact_id = l.contact_id
WHERE l.cancelled_at IS NULL;

-- segment: booked_more_than
-- question: Who booked more than TIMES times (ticket orders) within the last DAYS days?
-- param times integer: bookings a member must exceed
-- param days integer: length of the period, ending at as_of
-- param as_of timestamp: end of the period
CREATE OR REPLACE MACRO seg_booked_more_than(times := 1, days := 365, as_of := NULL) AS TABLE
FROM (
    SELECT l.contact_id, any_value(l.email) AS email, count(DISTINCT l.order_id) AS bookings,
           min(l.occurred_at) AS first_booked_at, max(l.occurred_at) AS last_booked_at
    FROM _seg_lines() AS l
    WHERE l.line_type = 'ticket' AND _seg_in_period(l.occurred_at, days, as_of)
    GROUP BY l.contact_id
) AS s
WHERE s.bookings > times
ORDER BY s.contact_id;

-- segment: booked_event
-- question: Who booked a ticket for the event EVENT (its name, any case)?
-- param event text: the event's name, e.g. Hamlet
CREATE OR REPLACE MACRO seg_booked_event(event) AS TABLE
SELECT l.contact_id, any_value(l.email) AS email, count(*) AS tickets,
       max(l.event_date) AS event_date, max(l.occurred_at) AS last_booked_at
FROM _seg_lines() AS l
WHERE l.line_type = 'ticket' AND lower(l.event_name) = lower(event)
GROUP BY l.contact_id
ORDER BY l.contact_id;

-- segment: tickets_in_one_order
-- question: Who booked more than MORE_THAN tickets in the same order within the last DAYS days?
-- param more_than integer: tickets one order must exceed
-- param days integer: length of the period, ending at as_of
-- param as_of timestamp: end of the period
CREATE OR REPLACE MACRO seg_tickets_in_one_order(more_than := 3, days := 365, as_of := NULL) AS TABLE
WITH per_order AS (
    SELECT l.contact_id, any_value(l.email) AS email, l.order_id, count(*) AS tickets
    FROM _seg_lines() AS l
    WHERE l.line_type = 'ticket' AND _seg_in_period(l.occurred_at, days, as_of)
    GROUP BY l.contact_id, l.order_id
)
SELECT o.contact_id, any_value(o.email) AS email, max(o.tickets) AS largest_order,
       count(*) AS orders
FROM per_order AS o
WHERE o.tickets > more_than
GROUP BY o.contact_id
ORDER BY o.contact_id;

-- segment: booked_seat
-- question: Who booked a seat in ZONE (and ROW, SEAT, EVENT when given; empty = any)?
-- param zone text: zone name, e.g. Parket
-- param seat_row text: row
-- param seat text: seat
-- param event text: event name
CREATE OR REPLACE MACRO seg_booked_seat(zone := NULL, seat_row := NULL, seat := NULL, event := NULL) AS TABLE
SELECT l.contact_id, any_value(l.email) AS email, count(*) AS tickets,
       string_agg(DISTINCT l.zone || ' row ' || l."row" || ' seat ' || l.seat, '; '
                  ORDER BY l.zone || ' row ' || l."row" || ' seat ' || l.seat) AS seats
FROM _seg_lines() AS l
WHERE l.line_type = 'ticket'
  AND (zone IS NULL OR lower(l.zone) = lower(zone))
  AND (seat_row IS NULL OR l."row" = seat_row)
  AND (seat IS NULL OR l.seat = seat)
  AND (event IS NULL OR lower(l.event_name) = lower(event))
GROUP BY l.contact_id
ORDER BY l.contact_id;

-- segment: booked_channel
-- question: Who booked tickets through CHANNEL (online, or desk: at the box office) within the last DAYS days?
-- param channel text: online or desk
-- param days integer: length of the period, ending at as_of
-- param as_of timestamp: end of the period
CREATE OR REPLACE MACRO seg_booked_channel(channel := 'online', days := 365, as_of := NULL) AS TABLE
SELECT l.contact_id, any_value(l.email) AS email, count(*) AS tickets,
       count(DISTINCT l.order_id) AS orders
FROM _seg_lines() AS l
WHERE l.line_type = 'ticket' AND lower(l.channel) = lower(channel)
  AND _seg_in_period(l.occurred_at, days, as_of)
GROUP BY l.contact_id
ORDER BY l.contact_id;

-- segment: total_amount
-- question: Who spent at least AT_LEAST in CURRENCY (net of returns) within the last DAYS days?
-- param at_least number: the total to reach, in that currency
-- param currency text: ISO 4217 code; other currencies are not converted and not counted
-- param days integer: length of the period, ending at as_of
-- param as_of timestamp: end of the period
CREATE OR REPLACE MACRO seg_total_amount(at_least := 1000, currency := 'DKK', days := 365, as_of := NULL) AS TABLE
FROM (
    SELECT l.contact_id, any_value(l.email) AS email, sum(l.amount) AS total,
           any_value(upper(l.currency)) AS currency, count(DISTINCT l.order_id) AS orders
    FROM _seg_lines() AS l
    WHERE upper(l.currency) = upper(currency) AND _seg_in_period(l.occurred_at, days, as_of)
    GROUP BY l.contact_id
) AS s
WHERE s.total >= at_least
ORDER BY s.contact_id;

-- segment: updated_profile
-- question: Whose profile was updated (after it was created) within the last DAYS days?
-- param days integer: length of the period, ending at as_of
-- param as_of timestamp: end of the period
CREATE OR REPLACE MACRO seg_updated_profile(days := 30, as_of := NULL) AS TABLE
SELECT c.contact_id, c.email, c.updated_at, c.first_seen_at
FROM contacts AS c
WHERE c.updated_at > c.first_seen_at AND _seg_in_period(c.updated_at, days, as_of)
ORDER BY c.contact_id;

-- segment: event_then_dining
-- question: Who booked an event and then bought PRODUCT_GROUP (dining) in a later, separate order, within the last DAYS days?
-- param product_group text: the product group bought after the booking
-- param days integer: length of the period, ending at as_of
-- param as_of timestamp: end of the period
CREATE OR REPLACE MACRO seg_event_then_dining(product_group := 'Dining', days := 365, as_of := NULL) AS TABLE
WITH booked AS (
    SELECT l.contact_id, l.email, l.order_id, l.occurred_at
    FROM _seg_lines() AS l
    WHERE l.line_type = 'ticket' AND _seg_in_period(l.occurred_at, days, as_of)
), dined AS (
    SELECT l.contact_id, l.order_id, l.occurred_at
    FROM _seg_lines() AS l
    WHERE l.line_type = 'purchase' AND lower(l.product_group) = lower(product_group)
      AND _seg_in_period(l.occurred_at, days, as_of)
)
SELECT b.contact_id, any_value(b.email) AS email, min(b.occurred_at) AS booked_at,
       max(d.occurred_at) AS dined_at
FROM booked AS b
JOIN dined AS d
  ON d.contact_id = b.contact_id AND d.order_id <> b.order_id AND d.occurred_at > b.occurred_at
GROUP BY b.contact_id
ORDER BY b.contact_id;

-- segment: purchased_product
-- question: Who bought the product PRODUCT (its name, any case) within the last DAYS days?
-- param product text: the product's name, e.g. Latte
-- param days integer: length of the period, ending at as_of
-- param as_of timestamp: end of the period
CREATE OR REPLACE MACRO seg_purchased_product(product, days := 365, as_of := NULL) AS TABLE
SELECT l.contact_id, any_value(l.email) AS email, sum(l.quantity) AS quantity,
       max(l.occurred_at) AS last_bought_at
FROM _seg_lines() AS l
WHERE l.line_type = 'purchase' AND lower(l.product_name) = lower(product)
  AND _seg_in_period(l.occurred_at, days, as_of)
GROUP BY l.contact_id
ORDER BY l.contact_id;

-- segment: booked_on_date
-- question: Who booked tickets on the day DAY (the booking's date in TIMEZONE)?
-- param day date: the booking date, YYYY-MM-DD
-- param timezone text: the time zone the day is counted in
CREATE OR REPLACE MACRO seg_booked_on_date(day, timezone := 'Europe/Copenhagen') AS TABLE
SELECT l.contact_id, any_value(l.email) AS email, count(*) AS tickets,
       count(DISTINCT l.order_id) AS orders
FROM _seg_lines() AS l
WHERE l.line_type = 'ticket'
  AND CAST(timezone(timezone, l.occurred_at) AS DATE) = CAST(day AS DATE)
GROUP BY l.contact_id
ORDER BY l.contact_id;

-- segment: has_membership
-- question: Who holds a membership (of type MEMBERSHIP, if given) valid on the day of AS_OF?
-- param membership text: membership type, e.g. Årskort (empty: any)
-- param as_of timestamp: the moment it must be valid (its UTC date)
CREATE OR REPLACE MACRO seg_has_membership(membership := NULL, as_of := NULL) AS TABLE
SELECT l.contact_id, any_value(l.email) AS email,
       string_agg(DISTINCT l.product_name, '; ' ORDER BY l.product_name) AS memberships,
       max(l.valid_to) AS valid_to
FROM _seg_lines() AS l
WHERE l.line_type = 'membership'
  AND (membership IS NULL OR lower(l.product_name) = lower(membership))
  AND l.valid_from <= CAST(_seg_now(as_of) AS DATE)
  AND l.valid_to >= CAST(_seg_now(as_of) AS DATE)
GROUP BY l.contact_id
ORDER BY l.contact_id;

-- segment: bought_items
-- question: Who booked or bought at least AT_LEAST tickets and products together within the last DAYS days?
-- param at_least integer: tickets plus products (quantities) to reach
-- param days integer: length of the period, ending at as_of
-- param as_of timestamp: end of the period
CREATE OR REPLACE MACRO seg_bought_items(at_least := 10, days := 365, as_of := NULL) AS TABLE
FROM (
    SELECT l.contact_id, any_value(l.email) AS email,
           count(*) FILTER (WHERE l.line_type = 'ticket') AS tickets,
           -- The 0 has the quantities' scale, so "no products" reads 0.0000 on both stores.
           coalesce(sum(l.quantity) FILTER (WHERE l.line_type = 'purchase'),
                    CAST(0 AS DECIMAL(18, 4))) AS products,
           sum(l.quantity) AS items
    FROM _seg_lines() AS l
    WHERE l.line_type IN ('ticket', 'purchase') AND _seg_in_period(l.occurred_at, days, as_of)
    GROUP BY l.contact_id
) AS s
WHERE s.items >= at_least
ORDER BY s.contact_id;

-- segment: new_members
-- question: Who became a contact (first seen in any source) within the last DAYS days? (the welcome flow)
-- param days integer: length of the period, ending at as_of
-- param as_of timestamp: end of the period
CREATE OR REPLACE MACRO seg_new_members(days := 7, as_of := NULL) AS TABLE
SELECT c.contact_id, c.email, c.first_seen_at
FROM contacts AS c
WHERE _seg_in_period(c.first_seen_at, days, as_of)
ORDER BY c.contact_id;

-- segment: abandoned_cart
-- question: Which known members (browser paired, cookies accepted) put a show in the cart within the last DAYS days and have bought no ticket for it since?
-- param days integer: length of the period, ending at as_of
-- param as_of timestamp: end of the period
CREATE OR REPLACE MACRO seg_abandoned_cart(days := 30, as_of := NULL) AS TABLE
WITH carts AS (
    SELECT e.contact_id, e.event_id, max(e.occurred_at) AS added_at
    FROM tracking_events_by_contact AS e
    WHERE e.contact_id IS NOT NULL AND e.event_type = 'add_to_cart'
      AND _seg_in_period(e.occurred_at, days, as_of)
    GROUP BY e.contact_id, e.event_id
)
SELECT c.contact_id, any_value(k.email) AS email, count(*) AS shows,
       max(c.added_at) AS last_added_at
FROM carts AS c
JOIN contacts AS k ON k.contact_id = c.contact_id
WHERE NOT EXISTS (
    SELECT 1 FROM _seg_lines() AS l
    WHERE l.contact_id = c.contact_id AND l.event_id = c.event_id AND l.occurred_at >= c.added_at
)
GROUP BY c.contact_id
ORDER BY c.contact_id;
