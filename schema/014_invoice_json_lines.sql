-- Invoices stored before the subscription and adjustments became lines of the JSON
-- (billing/invoice_render.c) had them as members of their own, "subscription" and
-- "adjustments", so that the lines did not add up to the total. Their stored documents are
-- rewritten to the shape that every invoice now has; the amounts do not change, final
-- invoices included (only where their figures stand in the document).

-- An invoice document in the earlier shape, made over; one in the new shape as it is.
CREATE FUNCTION invoice_document_lines(doc jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT (doc - 'subscription' - 'adjustments')
           || jsonb_build_object('lines',
                  coalesce(doc->'lines', '[]'::jsonb)
                  || CASE WHEN doc ? 'subscription' THEN jsonb_build_array(jsonb_build_object(
                         'item', 'Subscription', 'meter', 'subscription', 'quantity', '1',
                         'unit_price', doc->>'subscription', 'amount', doc->>'subscription'))
                          ELSE '[]'::jsonb END
                  || coalesce((SELECT jsonb_agg(jsonb_build_object(
                                   'item', a->>'item', 'meter', 'adjustment', 'quantity', '1',
                                   'unit_price', a->>'amount', 'amount', a->>'amount',
                                   'period', a->>'period', 'invoice_id', a->'invoice_id')
                                   ORDER BY x.n)
                                 FROM jsonb_array_elements(doc->'adjustments')
                                      WITH ORDINALITY AS x(a, n)),
                              '[]'::jsonb))
$$;

UPDATE invoices SET document = invoice_document_lines(document)
 WHERE document ? 'subscription' OR document ? 'adjustments';
