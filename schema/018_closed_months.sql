-- Months closed to corrections.
--
-- Usage that arrives for a month after its invoice is final is carried by the tenant's
-- next invoice as an adjustment. Where it cannot be (the month was billed in a currency
-- the tenant's plan no longer bills in, or stored with more decimals than its currency
-- has), the operator settles it outside and closes the month: `faasbill invoice --close`
-- sets closed_at, and later usage of a closed month is kept in the rollups but no longer
-- carried on invoices.
ALTER TABLE invoices ADD COLUMN closed_at timestamptz;
