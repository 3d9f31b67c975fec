-- Most runs carry no idempotency key; indexing only the keyed ones spares
-- every unkeyed insert one index entry. Uniqueness, the key look-ups
-- (`idempotency_key = ANY(…)`, which implies a key) and the insert's
-- `ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL` are
-- served as before.
DROP INDEX pipeline_runs_idempotency_ux;
CREATE UNIQUE INDEX pipeline_runs_idempotency_ux ON pipeline_runs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
