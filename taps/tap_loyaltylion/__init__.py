"""tap-loyaltylion: LoyaltyLion API v2 customers and transactions (Singer, on singer_kit)."""
