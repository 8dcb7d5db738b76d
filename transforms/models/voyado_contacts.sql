-- key: contact_id
-- change_column: updated_at
-- description: Voyado contacts: one per person in the store (FlexPOS and Billetten as one), with consents and the store of the first purchase
-- target-voyado identifies each by its contact_key (email by default), leaves empty values
-- out, maps the consents to communication preferences and store_id/store/country_code to
-- storeExternalId (targets/target_voyado/README.md).
SELECT
    c.contact_id,
    c.email,
    c.mobile,
    c.member_number,
    c.first_name,
    c.last_name,
    c.birthday,
    c.address,
    c.zip_code,
    c.city,
    c.country_code,
    c.newsletter,
    c.consent_related,
    home.store_id,
    home.store,
    c.updated_at
FROM contacts AS c
LEFT JOIN (
    -- The store of the person's first POS purchase: where they signed up, as Voyado wants it.
    SELECT
        contact_id,
        arg_min(store_id, occurred_at) AS store_id,
        arg_min(store, occurred_at) AS store
    FROM order_lines_by_contact
    WHERE contact_id IS NOT NULL AND store_id IS NOT NULL
    GROUP BY contact_id
) AS home ON home.contact_id = c.contact_id
