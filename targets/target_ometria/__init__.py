"""target-ometria: store models (contacts, orders) to Ometria's push API, only what changed."""
