"""target-voyado: contacts, receipts, returns and the welcome promotion into Voyado Engage."""
