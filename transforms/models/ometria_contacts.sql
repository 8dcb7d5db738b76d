-- key: contact_id
-- change_column: updated_at
-- description: Ometria contacts: each store contact with its consent and every LoyaltyLion field of the guide's sync list
--
-- One row per contact; a contact in several LoyaltyLion programmes gets the account changed
-- last (then the lowest programme id). updated_at is the later of the contact's and the loyalty
-- account's change, so a changed loyalty field makes the contact due again. target-ometria
-- turns contact_id into a pseudonymous id and newsletter/unsubscribed_at into marketing_optin.
WITH loyalty AS (
    SELECT *
    FROM loyalty_accounts
    WHERE source = 'loyaltylion'
    QUALIFY row_number() OVER (
        PARTITION BY contact_id ORDER BY updated_at DESC NULLS LAST, programme
    ) = 1
)
SELECT
    c.contact_id,
    c.email,
    c.mobile,
    c.first_name,
    c.last_name,
    c.birthday AS date_of_birth,
    c.country_code,
    c.newsletter,
    c.unsubscribed_at,
    c.first_seen_at,
    l.points_total,
    l.points_approved,
    l.points_pending,
    l.points_spent,
    l.points_lifetime,
    l.rewards_claimed,
    l.rewards_used,
    l.blocked,
    l.enrolled_at,
    l.referral_url,
    l.tier_name,
    l.birthday,
    l.insights_segment,
    l.tier_expires_at,
    l.tier_progress,
    l.tier_progress_projected,
    l.tier_progress_to_renew,
    l.tier_progress_to_upgrade,
    l.next_tier_name,
    l.forecast_tier_name,
    l.receipt_upload_url,
    greatest(c.updated_at, l.updated_at) AS updated_at
FROM contacts AS c
LEFT JOIN loyalty AS l USING (contact_id)
