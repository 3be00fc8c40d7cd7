-- What an invoice's bill-to block shows and how a customer is taxed, as the customers file
-- gives them: {"email", "address", "tax_id", "payment_terms_days", "taxes", "tax_exempt",
-- "locale"} (only the keys given). Versioned with the customer; NULL when none were given.
ALTER TABLE customer_versions ADD COLUMN details JSON;
