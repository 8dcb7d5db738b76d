"""Singer tap for FlexPOS / Amero: customers and journals (POS API), tickets and memberships
(Attraction API)."""
