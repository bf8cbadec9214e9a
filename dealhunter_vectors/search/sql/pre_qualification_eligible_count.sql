-- The number of rows the global search ranks (description embedding and requirements present).
SELECT count(*)
FROM "pre_qualifications" p
WHERE p."description_embedding" IS NOT NULL
  AND p."extracted_requirements" IS NOT NULL
