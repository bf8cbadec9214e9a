-- Lock a pre-qualification's row against other writers of its chunks until commit (NO KEY:
-- inserts that reference it still pass their foreign-key checks); no row: it does not exist.
SELECT p."id" FROM "pre_qualifications" p WHERE p."id" = $1 FOR NO KEY UPDATE
