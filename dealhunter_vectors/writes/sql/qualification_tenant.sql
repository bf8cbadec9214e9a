-- The pre-qualification that owns the qualification $1 (no row: it does not exist).
SELECT q."pre_qualification_id" FROM "qualifications" q WHERE q."id" = $1
