-- Distributed layout 1: the 29 tables on a Citus coordinator, every pre-qualification's rows
-- on one shard (the pre-qualification is the tenant). Runs after the single-node migrations
-- (the tables exist as local tables, possibly with rows), in one transaction.
-- Design and what could not be kept: docs/scaling.md, section "Citus".

-- Adding foreign keys right after distributing tables in one transaction needs one
-- connection per worker (sequential mode).
SET LOCAL citus.multi_shard_modify_mode TO 'sequential';

-- 1. Foreign keys go first (they depend on the primary keys that change below); the ones
--    Citus allows come back in step 5.
ALTER TABLE "users" DROP CONSTRAINT "users_business_unit_id_business_units_id_fk";
ALTER TABLE "references" DROP CONSTRAINT "references_user_id_users_id_fk";
ALTER TABLE "references" DROP CONSTRAINT "references_validated_by_user_id_users_id_fk";
ALTER TABLE "competencies" DROP CONSTRAINT "competencies_user_id_users_id_fk";
ALTER TABLE "competencies" DROP CONSTRAINT "competencies_validated_by_user_id_users_id_fk";
ALTER TABLE "technologies" DROP CONSTRAINT "technologies_business_unit_id_business_units_id_fk";
ALTER TABLE "employees" DROP CONSTRAINT "employees_business_unit_id_business_units_id_fk";
ALTER TABLE "audit_trails" DROP CONSTRAINT "audit_trails_user_id_users_id_fk";
ALTER TABLE "accounts" DROP CONSTRAINT "accounts_user_id_users_id_fk";
ALTER TABLE "pre_qualifications" DROP CONSTRAINT "pre_qualifications_user_id_users_id_fk";
ALTER TABLE "pre_qualifications" DROP CONSTRAINT "pre_qualifications_account_id_accounts_id_fk";
ALTER TABLE "quick_scans" DROP CONSTRAINT "quick_scans_pre_qualification_id_pre_qualifications_id_fk";
ALTER TABLE "deep_migration_analyses" DROP CONSTRAINT "deep_migration_analyses_pre_qualification_id_pre_qualifications_id_fk";
ALTER TABLE "deep_migration_analyses" DROP CONSTRAINT "deep_migration_analyses_user_id_users_id_fk";
ALTER TABLE "documents" DROP CONSTRAINT "documents_pre_qualification_id_pre_qualifications_id_fk";
ALTER TABLE "documents" DROP CONSTRAINT "documents_user_id_users_id_fk";
ALTER TABLE "competitors" DROP CONSTRAINT "competitors_user_id_users_id_fk";
ALTER TABLE "competitors" DROP CONSTRAINT "competitors_validated_by_user_id_users_id_fk";
ALTER TABLE "team_assignments" DROP CONSTRAINT "team_assignments_pre_qualification_id_pre_qualifications_id_fk";
ALTER TABLE "team_assignments" DROP CONSTRAINT "team_assignments_employee_id_employees_id_fk";
ALTER TABLE "subjective_assessments" DROP CONSTRAINT "subjective_assessments_pre_qualification_id_pre_qualifications_id_fk";
ALTER TABLE "subjective_assessments" DROP CONSTRAINT "subjective_assessments_user_id_users_id_fk";
ALTER TABLE "background_jobs" DROP CONSTRAINT "background_jobs_pre_qualification_id_pre_qualifications_id_fk";
ALTER TABLE "background_jobs" DROP CONSTRAINT "background_jobs_user_id_users_id_fk";
ALTER TABLE "qualifications" DROP CONSTRAINT "qualifications_pre_qualification_id_pre_qualifications_id_fk";
ALTER TABLE "qualifications" DROP CONSTRAINT "qualifications_quick_scan_id_quick_scans_id_fk";
ALTER TABLE "qualifications" DROP CONSTRAINT "qualifications_business_unit_id_business_units_id_fk";
ALTER TABLE "qualifications" DROP CONSTRAINT "qualifications_bl_voted_by_user_id_users_id_fk";
ALTER TABLE "qualifications" DROP CONSTRAINT "qualifications_selected_cms_id_technologies_id_fk";
ALTER TABLE "qualification_section_data" DROP CONSTRAINT "qualification_section_data_qualification_id_qualifications_id_fk";
ALTER TABLE "website_audits" DROP CONSTRAINT "website_audits_qualification_id_qualifications_id_fk";
ALTER TABLE "cms_match_results" DROP CONSTRAINT "cms_match_results_qualification_id_qualifications_id_fk";
ALTER TABLE "cms_match_results" DROP CONSTRAINT "cms_match_results_technology_id_technologies_id_fk";
ALTER TABLE "baseline_comparisons" DROP CONSTRAINT "baseline_comparisons_qualification_id_qualifications_id_fk";
ALTER TABLE "baseline_comparisons" DROP CONSTRAINT "baseline_comparisons_technology_id_technologies_id_fk";
ALTER TABLE "pt_estimations" DROP CONSTRAINT "pt_estimations_qualification_id_qualifications_id_fk";
ALTER TABLE "reference_matches" DROP CONSTRAINT "reference_matches_qualification_id_qualifications_id_fk";
ALTER TABLE "reference_matches" DROP CONSTRAINT "reference_matches_reference_id_references_id_fk";
ALTER TABLE "competitor_matches" DROP CONSTRAINT "competitor_matches_qualification_id_qualifications_id_fk";
ALTER TABLE "competitor_matches" DROP CONSTRAINT "competitor_matches_competitor_id_competitors_id_fk";
ALTER TABLE "deal_embeddings" DROP CONSTRAINT "deal_embeddings_pre_qualification_id_pre_qualifications_id_fk";
ALTER TABLE "deal_embeddings" DROP CONSTRAINT "deal_embeddings_qualification_id_qualifications_id_fk";
ALTER TABLE "raw_chunks" DROP CONSTRAINT "raw_chunks_pre_qualification_id_pre_qualifications_id_fk";
ALTER TABLE "pitchdecks" DROP CONSTRAINT "pitchdecks_qualification_id_qualifications_id_fk";
ALTER TABLE "pitchdecks" DROP CONSTRAINT "pitchdecks_team_confirmed_by_user_id_users_id_fk";
ALTER TABLE "pitchdeck_deliverables" DROP CONSTRAINT "pitchdeck_deliverables_pitchdeck_id_pitchdecks_id_fk";
ALTER TABLE "pitchdeck_deliverables" DROP CONSTRAINT "pitchdeck_deliverables_assigned_to_employee_id_employees_id_fk";
ALTER TABLE "pitchdeck_team_members" DROP CONSTRAINT "pitchdeck_team_members_pitchdeck_id_pitchdecks_id_fk";
ALTER TABLE "pitchdeck_team_members" DROP CONSTRAINT "pitchdeck_team_members_employee_id_employees_id_fk";

-- 2. Library-owned tenant columns: the owning pre-qualification's id, for the tables that
--    have no pre-qualification column (the ten tables below a qualification or a pitchdeck),
--    for deal_embeddings (rows may carry only a qualification) and background_jobs (a job
--    may have no pre-qualification: then it is its own tenant). The library fills them on
--    every write (dealhunter_vectors.scale.citus); existing rows are filled from the parents.
ALTER TABLE "qualification_section_data" ADD COLUMN "tenant_id" text;
ALTER TABLE "website_audits" ADD COLUMN "tenant_id" text;
ALTER TABLE "cms_match_results" ADD COLUMN "tenant_id" text;
ALTER TABLE "baseline_comparisons" ADD COLUMN "tenant_id" text;
ALTER TABLE "pt_estimations" ADD COLUMN "tenant_id" text;
ALTER TABLE "reference_matches" ADD COLUMN "tenant_id" text;
ALTER TABLE "competitor_matches" ADD COLUMN "tenant_id" text;
ALTER TABLE "pitchdecks" ADD COLUMN "tenant_id" text;
ALTER TABLE "pitchdeck_deliverables" ADD COLUMN "tenant_id" text;
ALTER TABLE "pitchdeck_team_members" ADD COLUMN "tenant_id" text;
ALTER TABLE "deal_embeddings" ADD COLUMN "tenant_id" text;
ALTER TABLE "background_jobs" ADD COLUMN "tenant_id" text;

UPDATE "qualification_section_data" t SET "tenant_id" = q."pre_qualification_id" FROM "qualifications" q WHERE q."id" = t."qualification_id";
UPDATE "website_audits" t SET "tenant_id" = q."pre_qualification_id" FROM "qualifications" q WHERE q."id" = t."qualification_id";
UPDATE "cms_match_results" t SET "tenant_id" = q."pre_qualification_id" FROM "qualifications" q WHERE q."id" = t."qualification_id";
UPDATE "baseline_comparisons" t SET "tenant_id" = q."pre_qualification_id" FROM "qualifications" q WHERE q."id" = t."qualification_id";
UPDATE "pt_estimations" t SET "tenant_id" = q."pre_qualification_id" FROM "qualifications" q WHERE q."id" = t."qualification_id";
UPDATE "reference_matches" t SET "tenant_id" = q."pre_qualification_id" FROM "qualifications" q WHERE q."id" = t."qualification_id";
UPDATE "competitor_matches" t SET "tenant_id" = q."pre_qualification_id" FROM "qualifications" q WHERE q."id" = t."qualification_id";
UPDATE "pitchdecks" t SET "tenant_id" = q."pre_qualification_id" FROM "qualifications" q WHERE q."id" = t."qualification_id";
UPDATE "pitchdeck_deliverables" t SET "tenant_id" = p."tenant_id" FROM "pitchdecks" p WHERE p."id" = t."pitchdeck_id";
UPDATE "pitchdeck_team_members" t SET "tenant_id" = p."tenant_id" FROM "pitchdecks" p WHERE p."id" = t."pitchdeck_id";
UPDATE "deal_embeddings" d SET "tenant_id" = coalesce(
    d."pre_qualification_id",
    (SELECT q."pre_qualification_id" FROM "qualifications" q WHERE q."id" = d."qualification_id"));
UPDATE "background_jobs" SET "tenant_id" = coalesce("pre_qualification_id", "id");

-- A row whose tenant cannot be determined (orphaned parent) stops the layout here.
ALTER TABLE "qualification_section_data" ALTER COLUMN "tenant_id" SET NOT NULL;
ALTER TABLE "website_audits" ALTER COLUMN "tenant_id" SET NOT NULL;
ALTER TABLE "cms_match_results" ALTER COLUMN "tenant_id" SET NOT NULL;
ALTER TABLE "baseline_comparisons" ALTER COLUMN "tenant_id" SET NOT NULL;
ALTER TABLE "pt_estimations" ALTER COLUMN "tenant_id" SET NOT NULL;
ALTER TABLE "reference_matches" ALTER COLUMN "tenant_id" SET NOT NULL;
ALTER TABLE "competitor_matches" ALTER COLUMN "tenant_id" SET NOT NULL;
ALTER TABLE "pitchdecks" ALTER COLUMN "tenant_id" SET NOT NULL;
ALTER TABLE "pitchdeck_deliverables" ALTER COLUMN "tenant_id" SET NOT NULL;
ALTER TABLE "pitchdeck_team_members" ALTER COLUMN "tenant_id" SET NOT NULL;
ALTER TABLE "deal_embeddings" ALTER COLUMN "tenant_id" SET NOT NULL;
ALTER TABLE "background_jobs" ALTER COLUMN "tenant_id" SET NOT NULL;

-- The tenant agrees with the row's own pre-qualification column wherever it has one.
ALTER TABLE "deal_embeddings" ADD CONSTRAINT "deal_embeddings_tenant_check"
    CHECK ("pre_qualification_id" IS NULL OR "pre_qualification_id" = "tenant_id");
ALTER TABLE "background_jobs" ADD CONSTRAINT "background_jobs_tenant_check"
    CHECK ("tenant_id" = coalesce("pre_qualification_id", "id"));

COMMENT ON COLUMN "deal_embeddings"."tenant_id" IS
    'dealhunter_vectors (Citus layout): id of the owning pre-qualification, filled by the library; distribution column';

-- 3. Unique keys of distributed tables must contain the distribution column: the primary
--    key becomes (tenant, id). (ids stay unique in practice: they are generated ids.)
ALTER TABLE "quick_scans" DROP CONSTRAINT "quick_scans_pkey", ADD PRIMARY KEY ("pre_qualification_id", "id");
ALTER TABLE "deep_migration_analyses" DROP CONSTRAINT "deep_migration_analyses_pkey", ADD PRIMARY KEY ("pre_qualification_id", "id");
ALTER TABLE "documents" DROP CONSTRAINT "documents_pkey", ADD PRIMARY KEY ("pre_qualification_id", "id");
ALTER TABLE "team_assignments" DROP CONSTRAINT "team_assignments_pkey", ADD PRIMARY KEY ("pre_qualification_id", "id");
ALTER TABLE "subjective_assessments" DROP CONSTRAINT "subjective_assessments_pkey", ADD PRIMARY KEY ("pre_qualification_id", "id");
ALTER TABLE "qualifications" DROP CONSTRAINT "qualifications_pkey", ADD PRIMARY KEY ("pre_qualification_id", "id");
ALTER TABLE "raw_chunks" DROP CONSTRAINT "raw_chunks_pkey", ADD PRIMARY KEY ("pre_qualification_id", "id");
ALTER TABLE "qualification_section_data" DROP CONSTRAINT "qualification_section_data_pkey", ADD PRIMARY KEY ("tenant_id", "id");
ALTER TABLE "website_audits" DROP CONSTRAINT "website_audits_pkey", ADD PRIMARY KEY ("tenant_id", "id");
ALTER TABLE "cms_match_results" DROP CONSTRAINT "cms_match_results_pkey", ADD PRIMARY KEY ("tenant_id", "id");
ALTER TABLE "baseline_comparisons" DROP CONSTRAINT "baseline_comparisons_pkey", ADD PRIMARY KEY ("tenant_id", "id");
ALTER TABLE "pt_estimations" DROP CONSTRAINT "pt_estimations_pkey", ADD PRIMARY KEY ("tenant_id", "id");
ALTER TABLE "reference_matches" DROP CONSTRAINT "reference_matches_pkey", ADD PRIMARY KEY ("tenant_id", "id");
ALTER TABLE "competitor_matches" DROP CONSTRAINT "competitor_matches_pkey", ADD PRIMARY KEY ("tenant_id", "id");
ALTER TABLE "pitchdecks" DROP CONSTRAINT "pitchdecks_pkey", ADD PRIMARY KEY ("tenant_id", "id");
ALTER TABLE "pitchdeck_deliverables" DROP CONSTRAINT "pitchdeck_deliverables_pkey", ADD PRIMARY KEY ("tenant_id", "id");
ALTER TABLE "pitchdeck_team_members" DROP CONSTRAINT "pitchdeck_team_members_pkey", ADD PRIMARY KEY ("tenant_id", "id");
ALTER TABLE "deal_embeddings" DROP CONSTRAINT "deal_embeddings_pkey", ADD PRIMARY KEY ("tenant_id", "id");
ALTER TABLE "background_jobs" DROP CONSTRAINT "background_jobs_pkey", ADD PRIMARY KEY ("tenant_id", "id");

-- 4. Shared tables are reference tables (a copy on every node); audit_trails is append-only
--    and unbounded: distributed by its id, in a colocation group of its own; every table of
--    a pre-qualification is co-located with pre_qualifications.
SELECT create_reference_table('"business_units"');
SELECT create_reference_table('"users"');
SELECT create_reference_table('"references"');
SELECT create_reference_table('"competencies"');
SELECT create_reference_table('"technologies"');
SELECT create_reference_table('"employees"');
SELECT create_reference_table('"accounts"');
SELECT create_reference_table('"competitors"');
SELECT create_distributed_table('"pre_qualifications"', 'id', colocate_with => 'none');
SELECT create_distributed_table('"quick_scans"', 'pre_qualification_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"deep_migration_analyses"', 'pre_qualification_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"documents"', 'pre_qualification_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"team_assignments"', 'pre_qualification_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"subjective_assessments"', 'pre_qualification_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"qualifications"', 'pre_qualification_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"raw_chunks"', 'pre_qualification_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"qualification_section_data"', 'tenant_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"website_audits"', 'tenant_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"cms_match_results"', 'tenant_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"baseline_comparisons"', 'tenant_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"pt_estimations"', 'tenant_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"reference_matches"', 'tenant_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"competitor_matches"', 'tenant_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"pitchdecks"', 'tenant_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"pitchdeck_deliverables"', 'tenant_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"pitchdeck_team_members"', 'tenant_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"deal_embeddings"', 'tenant_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"background_jobs"', 'tenant_id', colocate_with => 'pre_qualifications');
SELECT create_distributed_table('"audit_trails"', 'id', colocate_with => 'none');

-- 5. Foreign keys, wherever Citus allows them: to reference tables, and between co-located
--    tables when they include the distribution column (composite keys with the tenant).
--    Same as the single node:
ALTER TABLE "users" ADD CONSTRAINT "users_business_unit_id_business_units_id_fk" FOREIGN KEY ("business_unit_id") REFERENCES "business_units" ("id") ON DELETE no action;
ALTER TABLE "references" ADD CONSTRAINT "references_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "references" ADD CONSTRAINT "references_validated_by_user_id_users_id_fk" FOREIGN KEY ("validated_by_user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "competencies" ADD CONSTRAINT "competencies_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "competencies" ADD CONSTRAINT "competencies_validated_by_user_id_users_id_fk" FOREIGN KEY ("validated_by_user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "technologies" ADD CONSTRAINT "technologies_business_unit_id_business_units_id_fk" FOREIGN KEY ("business_unit_id") REFERENCES "business_units" ("id") ON DELETE no action;
ALTER TABLE "employees" ADD CONSTRAINT "employees_business_unit_id_business_units_id_fk" FOREIGN KEY ("business_unit_id") REFERENCES "business_units" ("id") ON DELETE no action;
ALTER TABLE "audit_trails" ADD CONSTRAINT "audit_trails_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "accounts" ADD CONSTRAINT "accounts_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "pre_qualifications" ADD CONSTRAINT "pre_qualifications_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "pre_qualifications" ADD CONSTRAINT "pre_qualifications_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "accounts" ("id") ON DELETE no action;
ALTER TABLE "quick_scans" ADD CONSTRAINT "quick_scans_pre_qualification_id_pre_qualifications_id_fk" FOREIGN KEY ("pre_qualification_id") REFERENCES "pre_qualifications" ("id") ON DELETE no action;
ALTER TABLE "deep_migration_analyses" ADD CONSTRAINT "deep_migration_analyses_pre_qualification_id_pre_qualifications_id_fk" FOREIGN KEY ("pre_qualification_id") REFERENCES "pre_qualifications" ("id") ON DELETE no action;
ALTER TABLE "deep_migration_analyses" ADD CONSTRAINT "deep_migration_analyses_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "documents" ADD CONSTRAINT "documents_pre_qualification_id_pre_qualifications_id_fk" FOREIGN KEY ("pre_qualification_id") REFERENCES "pre_qualifications" ("id") ON DELETE no action;
ALTER TABLE "documents" ADD CONSTRAINT "documents_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "competitors" ADD CONSTRAINT "competitors_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "competitors" ADD CONSTRAINT "competitors_validated_by_user_id_users_id_fk" FOREIGN KEY ("validated_by_user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "team_assignments" ADD CONSTRAINT "team_assignments_pre_qualification_id_pre_qualifications_id_fk" FOREIGN KEY ("pre_qualification_id") REFERENCES "pre_qualifications" ("id") ON DELETE no action;
ALTER TABLE "team_assignments" ADD CONSTRAINT "team_assignments_employee_id_employees_id_fk" FOREIGN KEY ("employee_id") REFERENCES "employees" ("id") ON DELETE no action;
ALTER TABLE "subjective_assessments" ADD CONSTRAINT "subjective_assessments_pre_qualification_id_pre_qualifications_id_fk" FOREIGN KEY ("pre_qualification_id") REFERENCES "pre_qualifications" ("id") ON DELETE no action;
ALTER TABLE "subjective_assessments" ADD CONSTRAINT "subjective_assessments_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "background_jobs" ADD CONSTRAINT "background_jobs_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "qualifications" ADD CONSTRAINT "qualifications_pre_qualification_id_pre_qualifications_id_fk" FOREIGN KEY ("pre_qualification_id") REFERENCES "pre_qualifications" ("id") ON DELETE no action;
ALTER TABLE "qualifications" ADD CONSTRAINT "qualifications_business_unit_id_business_units_id_fk" FOREIGN KEY ("business_unit_id") REFERENCES "business_units" ("id") ON DELETE no action;
ALTER TABLE "qualifications" ADD CONSTRAINT "qualifications_bl_voted_by_user_id_users_id_fk" FOREIGN KEY ("bl_voted_by_user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "qualifications" ADD CONSTRAINT "qualifications_selected_cms_id_technologies_id_fk" FOREIGN KEY ("selected_cms_id") REFERENCES "technologies" ("id") ON DELETE no action;
ALTER TABLE "cms_match_results" ADD CONSTRAINT "cms_match_results_technology_id_technologies_id_fk" FOREIGN KEY ("technology_id") REFERENCES "technologies" ("id") ON DELETE no action;
ALTER TABLE "baseline_comparisons" ADD CONSTRAINT "baseline_comparisons_technology_id_technologies_id_fk" FOREIGN KEY ("technology_id") REFERENCES "technologies" ("id") ON DELETE no action;
ALTER TABLE "reference_matches" ADD CONSTRAINT "reference_matches_reference_id_references_id_fk" FOREIGN KEY ("reference_id") REFERENCES "references" ("id") ON DELETE no action;
ALTER TABLE "competitor_matches" ADD CONSTRAINT "competitor_matches_competitor_id_competitors_id_fk" FOREIGN KEY ("competitor_id") REFERENCES "competitors" ("id") ON DELETE no action;
ALTER TABLE "pitchdecks" ADD CONSTRAINT "pitchdecks_team_confirmed_by_user_id_users_id_fk" FOREIGN KEY ("team_confirmed_by_user_id") REFERENCES "users" ("id") ON DELETE no action;
ALTER TABLE "pitchdeck_deliverables" ADD CONSTRAINT "pitchdeck_deliverables_assigned_to_employee_id_employees_id_fk" FOREIGN KEY ("assigned_to_employee_id") REFERENCES "employees" ("id") ON DELETE no action;
ALTER TABLE "pitchdeck_team_members" ADD CONSTRAINT "pitchdeck_team_members_employee_id_employees_id_fk" FOREIGN KEY ("employee_id") REFERENCES "employees" ("id") ON DELETE no action;
ALTER TABLE "raw_chunks" ADD CONSTRAINT "raw_chunks_pre_qualification_id_pre_qualifications_id_fk" FOREIGN KEY ("pre_qualification_id") REFERENCES "pre_qualifications" ("id") ON DELETE cascade;

--    Composite (tenant, parent id): the same parent row, and the child on its parent's shard:
ALTER TABLE "qualifications" ADD CONSTRAINT "qualifications_quick_scan_id_quick_scans_id_fk" FOREIGN KEY ("pre_qualification_id", "quick_scan_id") REFERENCES "quick_scans" ("pre_qualification_id", "id") ON DELETE no action;
ALTER TABLE "qualification_section_data" ADD CONSTRAINT "qualification_section_data_qualification_id_qualifications_id_fk" FOREIGN KEY ("tenant_id", "qualification_id") REFERENCES "qualifications" ("pre_qualification_id", "id") ON DELETE cascade;
ALTER TABLE "website_audits" ADD CONSTRAINT "website_audits_qualification_id_qualifications_id_fk" FOREIGN KEY ("tenant_id", "qualification_id") REFERENCES "qualifications" ("pre_qualification_id", "id") ON DELETE no action;
ALTER TABLE "cms_match_results" ADD CONSTRAINT "cms_match_results_qualification_id_qualifications_id_fk" FOREIGN KEY ("tenant_id", "qualification_id") REFERENCES "qualifications" ("pre_qualification_id", "id") ON DELETE no action;
ALTER TABLE "baseline_comparisons" ADD CONSTRAINT "baseline_comparisons_qualification_id_qualifications_id_fk" FOREIGN KEY ("tenant_id", "qualification_id") REFERENCES "qualifications" ("pre_qualification_id", "id") ON DELETE no action;
ALTER TABLE "pt_estimations" ADD CONSTRAINT "pt_estimations_qualification_id_qualifications_id_fk" FOREIGN KEY ("tenant_id", "qualification_id") REFERENCES "qualifications" ("pre_qualification_id", "id") ON DELETE no action;
ALTER TABLE "reference_matches" ADD CONSTRAINT "reference_matches_qualification_id_qualifications_id_fk" FOREIGN KEY ("tenant_id", "qualification_id") REFERENCES "qualifications" ("pre_qualification_id", "id") ON DELETE no action;
ALTER TABLE "competitor_matches" ADD CONSTRAINT "competitor_matches_qualification_id_qualifications_id_fk" FOREIGN KEY ("tenant_id", "qualification_id") REFERENCES "qualifications" ("pre_qualification_id", "id") ON DELETE no action;
ALTER TABLE "pitchdecks" ADD CONSTRAINT "pitchdecks_qualification_id_qualifications_id_fk" FOREIGN KEY ("tenant_id", "qualification_id") REFERENCES "qualifications" ("pre_qualification_id", "id") ON DELETE no action;
ALTER TABLE "deal_embeddings" ADD CONSTRAINT "deal_embeddings_qualification_id_qualifications_id_fk" FOREIGN KEY ("tenant_id", "qualification_id") REFERENCES "qualifications" ("pre_qualification_id", "id") ON DELETE cascade;
ALTER TABLE "pitchdeck_deliverables" ADD CONSTRAINT "pitchdeck_deliverables_pitchdeck_id_pitchdecks_id_fk" FOREIGN KEY ("tenant_id", "pitchdeck_id") REFERENCES "pitchdecks" ("tenant_id", "id") ON DELETE no action;
ALTER TABLE "pitchdeck_team_members" ADD CONSTRAINT "pitchdeck_team_members_pitchdeck_id_pitchdecks_id_fk" FOREIGN KEY ("tenant_id", "pitchdeck_id") REFERENCES "pitchdecks" ("tenant_id", "id") ON DELETE no action;

--    deal_embeddings.pre_qualification_id is NULL or equal to tenant_id (check above), so the
--    key on tenant_id covers it (and deleting a pre-qualification deletes its chunks, as before):
ALTER TABLE "deal_embeddings" ADD CONSTRAINT "deal_embeddings_pre_qualification_id_pre_qualifications_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "pre_qualifications" ("id") ON DELETE cascade;

--    Not kept: background_jobs.pre_qualification_id -> pre_qualifications (a job without a
--    pre-qualification is its own tenant, so the key cannot include the distribution column).
