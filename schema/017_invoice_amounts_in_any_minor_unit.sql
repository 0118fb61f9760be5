-- Invoice amounts in their currency's minor unit, whatever it is.
--
-- Amounts are rounded to their currency's minor unit (ISO 4217: none for JPY, three
-- decimals for BHD) before they are stored. numeric(24, 2) rounded a three-decimal amount
-- a second time, and made a yen amount read back as hundredths. The columns now keep the
-- amount as it was rounded; amounts stored before keep their value.
ALTER TABLE invoices
    ALTER COLUMN total TYPE numeric,
    ALTER COLUMN usage_total TYPE numeric;
ALTER TABLE invoice_lines ALTER COLUMN amount TYPE numeric;
ALTER TABLE invoice_adjustments ALTER COLUMN amount TYPE numeric;
