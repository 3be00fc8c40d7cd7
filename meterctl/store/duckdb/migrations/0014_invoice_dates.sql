-- The day an invoice was finalized (in the customer's time zone) and the day it is due (the
-- issue date plus the payment terms in force then: the customer's, else the seller's, else
-- 30 days). Set with the number; NULL on drafts and on invoices finalized before this.
ALTER TABLE invoices ADD COLUMN issue_date DATE;
ALTER TABLE invoices ADD COLUMN due_date DATE;
