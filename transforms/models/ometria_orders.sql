-- key: order_id
-- change_column: updated_at
-- description: Ometria orders: the store's order lines combined per order, with line items
--
-- One row per (source, order_id), as the store's `orders` view. Totals count the lines that are
-- not cancelled (a return line's negative amount lowers them). Every line is a line item; a
-- cancelled or returned line carries quantity_refunded and refunded (docs/emulated-contracts.md,
-- Ometria). An order whose lines are all cancelled is status 'cancelled' and is_valid false.
SELECT
    l.source || ':' || l.order_id AS order_id,
    any_value(l.contact_id) AS contact_id,
    any_value(c.email) AS email,
    min(l.occurred_at) AS "timestamp",
    round(coalesce(sum(l.amount) FILTER (WHERE l.cancelled_at IS NULL), 0), 2)::DOUBLE
        AS grand_total,
    round(coalesce(sum(l.amount + coalesce(l.discount, 0)) FILTER (WHERE l.cancelled_at IS NULL), 0), 2)::DOUBLE
        AS subtotal,
    round(coalesce(sum(l.discount) FILTER (WHERE l.cancelled_at IS NULL), 0), 2)::DOUBLE
        AS discount,
    any_value(l.currency) AS currency,
    CASE WHEN bool_and(l.cancelled_at IS NOT NULL) THEN 'cancelled' ELSE 'complete' END AS status,
    NOT bool_and(l.cancelled_at IS NOT NULL) AS is_valid,
    any_value(l.channel) AS channel,
    any_value(l.store) AS store,
    list(
        struct_pack(
            product_id := coalesce(l.product_id, l.sku, l.line_id),
            sku := l.sku,
            quantity := abs(l.quantity)::DOUBLE,
            unit_price := l.unit_price::DOUBLE,
            total := abs(l.amount)::DOUBLE,
            discount := l.discount::DOUBLE,
            quantity_refunded := CASE
                WHEN l.cancelled_at IS NOT NULL OR l.line_type = 'return' THEN abs(l.quantity)
            END::DOUBLE,
            refunded := CASE
                WHEN l.cancelled_at IS NOT NULL OR l.line_type = 'return' THEN abs(l.amount)
            END::DOUBLE
        )
        ORDER BY l.line_id
    ) AS lineitems,
    max(l.updated_at) AS updated_at
FROM order_lines_by_contact AS l
LEFT JOIN contacts AS c USING (contact_id)
GROUP BY l.source, l.order_id
