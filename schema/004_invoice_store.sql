-- Stored invoices: a draft is rebuilt on demand; a final one is frozen with the renderings
-- it was issued with. usage_total is the period's own charges at the last build (before
-- adjustments): usage that arrives for the period after it is final shows up as the
-- difference between a fresh pricing and usage_total, carried on a later invoice.
ALTER TABLE invoices
    ADD COLUMN usage_total numeric(24, 2) NOT NULL DEFAULT 0,
    ADD COLUMN text_render text NOT NULL DEFAULT '',
    ADD COLUMN csv_render text NOT NULL DEFAULT '',
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- GET /v1/invoices/{id} finds an invoice by its id alone (ids come from one identity).
CREATE INDEX invoices_id ON invoices (invoice_id);

-- Which earlier period's corrections an invoice carries.
CREATE TABLE invoice_adjustments (
    tenant         text NOT NULL,
    invoice_id     bigint NOT NULL,
    for_invoice_id bigint NOT NULL,
    for_period     text NOT NULL,
    amount         numeric(24, 2) NOT NULL,
    PRIMARY KEY (tenant, invoice_id, for_invoice_id),
    FOREIGN KEY (tenant, invoice_id) REFERENCES invoices (tenant, invoice_id) ON DELETE CASCADE
);
