-- client_tokens in listing order.
--
-- GET /admin/api/tokens pages through client_tokens ordered by
-- (created_at, jti) and starts each page with the row comparison
-- (created_at, jti) > (cursor), so this index finds the start of a page
-- and returns the rows in order without a sort, however many tokens there
-- are. A state filter (active, revoked, expired) is checked on the rows
-- the index returns.
--
-- NOTE: with a filter that few rows pass, a page reads past every row that
-- fails it, up to the end of the table when fewer than a page pass.

CREATE INDEX IF NOT EXISTS client_tokens_created_at_jti
    ON client_tokens (created_at, jti);
