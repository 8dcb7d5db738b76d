-- key: receipt_id
-- change_column: updated_at
-- window_column: created_at
-- description: Voyado receipts: POS journals, ticket orders, and a RETURN receipt per cancelled ticket, with their item lines
-- One row per receipt a person made (anonymous sales have no contact to match). Receipts
-- cannot be changed in Voyado, so a cancelled ticket is not taken out of its order's
-- receipt: it becomes a RETURN receipt of its own (receipt_id '<line_id>:cancelled').
-- Line amounts are incl. VAT and after the line's discount; `discount` is a receipt-level
-- discount still to be spread over the lines (none in these sources). `promotion_codes` are the
-- POS promotions the sale used (a first purchase with WELCOME10 redeems the welcome offer).
WITH lines AS (
    SELECT
        l.*,
        CASE
            WHEN l.line_type IN ('purchase', 'return') THEN l.source || ':journal:' || l.order_id
            ELSE l.source || ':ticket-order:' || l.order_id
        END AS receipt_id,
        {
            'sku': coalesce(l.sku, l.product_id, l.event_id, l.product_name),
            'name': coalesce(l.product_name, l.event_name),
            'quantity': l.quantity::DOUBLE,
            'amount': l.amount::DOUBLE,
            'discount': l.discount::DOUBLE,
            'vat_rate': l.vat_rate::DOUBLE,
            'product_group': coalesce(l.product_group, l.event_name)
        } AS item
    FROM order_lines_by_contact AS l
    WHERE l.contact_id IS NOT NULL AND l.line_type IN ('purchase', 'return', 'ticket')
),
receipts AS (
    SELECT
        receipt_id,
        any_value(contact_id) AS contact_id,
        CASE WHEN bool_and(line_type = 'return') THEN 'RETURN' ELSE 'PURCHASE' END AS kind,
        min(occurred_at) AS created_at,
        any_value(coalesce(receipt_number, order_number)) AS receipt_number,
        any_value(store_id) AS store_id,
        any_value(coalesce(store, channel)) AS store,
        any_value(currency) AS currency,
        list(item ORDER BY occurred_at, line_id) AS items,
        list(DISTINCT promotion_code ORDER BY promotion_code)
            FILTER (WHERE promotion_code IS NOT NULL) AS promotion_codes,
        max(updated_at) AS updated_at
    FROM lines
    GROUP BY receipt_id
    UNION ALL
    SELECT
        line_id || ':cancelled' AS receipt_id,
        contact_id,
        'RETURN' AS kind,
        cancelled_at AS created_at,
        order_number AS receipt_number,
        store_id,
        coalesce(store, channel) AS store,
        currency,
        [item] AS items,
        NULL::VARCHAR[] AS promotion_codes,
        updated_at
    FROM lines
    WHERE line_type = 'ticket' AND cancelled_at IS NOT NULL
)
SELECT
    r.receipt_id,
    r.kind,
    c.email,
    c.mobile,
    c.member_number,
    r.created_at,
    r.receipt_number,
    r.store_id,
    r.store,
    r.currency,
    NULL::DOUBLE AS discount,
    r.items,
    r.promotion_codes,
    r.updated_at
FROM receipts AS r
JOIN contacts AS c ON c.contact_id = r.contact_id
