-- A deterministic sample of the global search's rows (the recall self-check's queries).
-- $1 seed (text), $2 sample size. Same seed and rows -> same sample; another seed -> another.
SELECT p."id", p."description_embedding"
FROM "pre_qualifications" p
WHERE p."description_embedding" IS NOT NULL
  AND p."extracted_requirements" IS NOT NULL
ORDER BY md5(p."id" || ':' || $1::text) COLLATE "C", p."id" COLLATE "C"
LIMIT $2
